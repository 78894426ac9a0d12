"""Fixtures shared by every layer, registered in tests/conftest.py as pytest_plugins."""
