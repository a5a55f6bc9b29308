"""Fixtures of the training tests."""

from tests.fakes.mlflow_store import empty_store, settings  # noqa: F401 - fixtures
