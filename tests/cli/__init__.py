"""The command line: click's CliRunner and real processes, against the real server."""
