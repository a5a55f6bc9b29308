"""Fixtures for the unit tests (no network)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

UNIT_DIR = Path(__file__).resolve().parent


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's in-process AWS with test credentials, and no emulator endpoint in the way."""
    for key, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Unit tests run without network (pytest-socket): any TCP/UDP socket fails the test.

    Unix sockets stay allowed (``--allow-unix-socket`` in pyproject.toml): asyncio's event
    loop wakes itself through a socketpair. A unit test of a local server (the emulator's
    lifecycle, Prefect's test server) says so with ``tests.fakes.LOOPBACK_ONLY``: it may connect to
    127.0.0.1 and nowhere else.
    """
    for item in items:
        if UNIT_DIR in item.path.parents and not item.get_closest_marker("allow_hosts"):
            item.add_marker(pytest.mark.disable_socket)
