"""The engine, CALLed as a DBA would in psql: token_rotation.rotate() and the functions around it."""
