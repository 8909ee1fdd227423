"""Fixtures every folder of tests shares, loaded as plugins: a test requests them by parameter name."""

pytest_plugins = ["tests.fixtures.database"]
