"""Bundle store: local directories and S3 prefixes (moto), with clear errors when missing."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from lambda_function.bundle_store import load_bundle, model_version_of, parse_s3_uri
from lambda_function.model import BundleError

BUCKET = "mushroom-local-models"


def test_local_directory(tiny_bundle):
    bundle = load_bundle(str(tiny_bundle))
    assert bundle.model_name == "mushroom-classifier" and bundle.model_version == "1"


def test_missing_local_directory_says_what_to_do(tmp_path):
    with pytest.raises(BundleError, match="model bundle not found at .*make train"):
        load_bundle(str(tmp_path / "nope"))


def test_parse_s3_uri():
    assert parse_s3_uri("s3://b/mushroom-classifier/3") == ("b", "mushroom-classifier/3/")
    assert parse_s3_uri("s3://b/p/") == ("b", "p/")
    with pytest.raises(BundleError):
        parse_s3_uri("s3:///p/")


@mock_aws
def test_s3_bundle_is_downloaded_once(tiny_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    for path in tiny_bundle.iterdir():
        s3.put_object(
            Bucket=BUCKET, Key=f"mushroom-classifier/1/{path.name}", Body=path.read_bytes()
        )

    uri = f"s3://{BUCKET}/mushroom-classifier/1/"
    bundle = load_bundle(uri, tmp_path / "cache", s3)
    assert bundle.model_version == "1"

    class NoS3:
        def get_object(self, **_):
            raise AssertionError("downloaded twice")

    assert load_bundle(uri, tmp_path / "cache", NoS3()).model_version == "1"


@mock_aws
def test_missing_s3_bundle_names_the_key(tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    uri = f"s3://{BUCKET}/mushroom-classifier/9/"
    expected = f"model bundle not found at {uri}bundle.json: NoSuchKey"
    with pytest.raises(BundleError, match=expected):
        load_bundle(uri, tmp_path / "cache", s3)
    assert not any((tmp_path / "cache").glob("*/bundle.json"))


@pytest.mark.parametrize(
    "model_file", [7, None, "", "a\0b", "../model.txt", "dir/model.txt", "/etc/hostname", ".."]
)
@mock_aws
def test_bundle_json_must_name_a_plain_model_file(tmp_path, model_file):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    entry = {"size": 1, "sha256": "0" * 64}
    metadata = {"format_version": 2, "model_file": model_file, "files": {"model.txt": entry}}
    s3.put_object(Bucket=BUCKET, Key="mushroom-classifier/2/bundle.json", Body=json.dumps(metadata))

    with pytest.raises(BundleError, match="must be a plain file name"):
        load_bundle(f"s3://{BUCKET}/mushroom-classifier/2/", tmp_path / "cache", s3)


def _upload(s3, directory, prefix: str, **replace: bytes) -> None:
    s3.create_bucket(Bucket=BUCKET)
    for path in directory.iterdir():
        body = replace.get(path.name, path.read_bytes())
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}{path.name}", Body=body)


@mock_aws
def test_a_truncated_model_file_in_s3_is_refused_and_not_cached(tiny_bundle, tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    model = (tiny_bundle / "model.txt").read_bytes()
    _upload(s3, tiny_bundle, "mushroom-classifier/4/", **{"model.txt": model[:-44]})

    uri = f"s3://{BUCKET}/mushroom-classifier/4/"
    expected = (
        f"{uri}model.txt is corrupt or truncated: expected {len(model)} bytes, "
        f"found {len(model) - 44}"
    )
    with pytest.raises(BundleError, match=expected):
        load_bundle(uri, tmp_path / "cache", s3)
    assert not list((tmp_path / "cache").glob("*/.complete"))


@mock_aws
def test_a_bundle_without_checksums_in_s3_is_refused(tiny_bundle, tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    metadata = json.loads((tiny_bundle / "bundle.json").read_text())
    metadata["format_version"] = 1
    del metadata["files"]
    _upload(s3, tiny_bundle, "mushroom-classifier/5/", **{"bundle.json": json.dumps(metadata)})

    with pytest.raises(BundleError, match="format_version 1 bundles carry no file checksums"):
        load_bundle(f"s3://{BUCKET}/mushroom-classifier/5/", tmp_path / "cache", s3)


@pytest.mark.parametrize(
    ("uri", "version"),
    [
        ("s3://models/mushroom-classifier/3/", "3"),
        ("s3://models/mushroom-classifier/12", "12"),
        ("/work/.local/bundles/mushroom-classifier/champion/", "champion"),
        ("", ""),
    ],
)
def test_the_model_version_is_the_uris_last_path_segment(uri, version):
    # One reading for the scorer's SHADOW_BUNDLE_URI and the deployer's read-backs.
    assert model_version_of(uri) == version
