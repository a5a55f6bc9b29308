"""DuckDB reads the archive from the emulator's S3 (moto server over HTTP) with the httpfs
extension from PyPI, loaded by its path; nothing is downloaded."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone

import boto3
import pytest

from monitoring import archive as sql
from monitoring.duckdb_engine import DuckDBEngine, S3Location
from tests.fakes.monitoring import scored_at, verdict

pytestmark = pytest.mark.integration
T = datetime(2026, 11, 27, 12, 30, tzinfo=timezone.utc)


@pytest.fixture
def s3_emulator(moto_server):
    client = boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    client.create_bucket(Bucket="mushroom-local-data")
    return client, S3Location("mushroom-local-data", "us-east-1", moto_server, "test", "test")


def test_duckdb_reads_gzip_json_lines_from_the_emulator(s3_emulator):
    client, location = s3_emulator
    key = f"{sql.TABLES['verdicts'].prefix}{sql.partition_key(T)}x.gz"
    lines = (json.dumps({**verdict(i, "edible"), "scored_at": scored_at(T)}) for i in range(7))
    client.put_object(
        Bucket=location.bucket, Key=key, Body=gzip.compress(("\n".join(lines) + "\n").encode())
    )
    engine = DuckDBEngine.over_s3(location)
    assert engine.query("SELECT count(*) AS n FROM verdicts").one() == {"n": 7}
    assert engine.query("SELECT count(*) AS n FROM observations").one() == {"n": 0}
