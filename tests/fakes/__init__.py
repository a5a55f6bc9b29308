"""Fakes and builders shared by the tests: one copy each."""

import pytest

# For the few unit tests of a local server (pytest-socket): loopback TCP only, no network.
LOOPBACK_ONLY = pytest.mark.allow_hosts(["127.0.0.1", "::1"])
