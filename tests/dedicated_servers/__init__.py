"""Tests that start servers of their own (replicas, crashes, pg_cron, Citus, the embedded server's settings),
marked own_server."""
