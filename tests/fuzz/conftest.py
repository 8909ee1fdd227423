"""The backend's database fixtures (SQLite always, PostgreSQL too when CI is set), for the fuzzers."""

from tests.backend.conftest import engine, settings, sqlite_template  # noqa: F401 - pytest fixtures
