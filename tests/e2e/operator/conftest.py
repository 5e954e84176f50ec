"""These tests run `python -m agency_operator` as a subprocess (see agency_testbed.fixtures_operator)."""

from agency_testbed.fixtures_operator import operator  # noqa: F401 - the fixture, until registered globally
