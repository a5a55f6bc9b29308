"""Unit tests run without network: pytest-socket refuses TCP/UDP sockets (tests/unit/conftest)."""

from __future__ import annotations

import socket

import boto3
import pytest
from pytest_socket import SocketBlockedError


def test_a_unit_test_cannot_open_a_network_socket() -> None:
    with pytest.raises(SocketBlockedError):
        socket.create_connection(("127.0.0.1", 9), timeout=0.1)


def test_an_aws_call_without_moto_is_refused_not_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    client = boto3.client("s3", region_name="us-east-1")
    with pytest.raises(Exception, match="socket"):
        client.list_buckets()
