"""Where the scorer gets its model bundle: a local directory, or S3 downloaded to /tmp once.

A bundle is ``bundle.json`` plus the files it lists with their size and SHA-256 (``model.txt``,
compiled predictors), see ``model.py``. Downloaded files are verified before they are cached,
and again on load (a compiled predictor is loaded from the bytes verified then).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lambda_function.model import (
    BUNDLE_METADATA_FILE,
    PREDICTOR_AUTO,
    BundleError,
    ModelBundle,
    bundle_files,
    parse_metadata,
    verify_file,
)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix/")`` (prefix ends with /)."""
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise BundleError(f"invalid model bundle URI {uri!r}: expected s3://<bucket>/<prefix>/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def model_version_of(uri: str) -> str:
    """The model version a bundle URI names: its last path segment, as the deployer writes
    it (``s3://bucket/mushroom-classifier/3/`` -> ``3``); "" for an empty URI."""
    return uri.rstrip("/").rsplit("/", 1)[-1] if uri else ""


def load_bundle(
    uri: str,
    cache_dir: str | Path | None = None,
    s3_client: Any = None,
    predictor: str = PREDICTOR_AUTO,
) -> ModelBundle:
    """Load the bundle at ``uri`` (``s3://...`` or a local directory) into memory.

    S3 bundles are downloaded under ``cache_dir`` (one subdirectory per URI) unless a complete
    copy is already there, so a warm container, or a second load, does not download again.
    ``predictor``: see ``ModelBundle.load``.
    """
    if uri.startswith("s3://"):
        cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "model-bundle"
        return ModelBundle.load(download_bundle(uri, cache, s3_client), predictor)
    directory = Path(uri)
    if not directory.is_dir():
        raise BundleError(
            f"model bundle not found at {uri}: not a directory "
            "(run `make train` to export one, or set MODEL_BUNDLE_URI)"
        )
    return ModelBundle.load(directory, predictor)


def download_bundle(uri: str, cache_dir: Path, s3_client: Any = None) -> Path:
    """Download ``bundle.json`` and the files it lists to a local directory; returns it.

    Each file is checked against its size and SHA-256 in bundle.json before it is written, so
    a truncated or corrupt object raises BundleError naming it, and nothing is cached.
    """
    bucket, prefix = parse_s3_uri(uri)
    target = cache_dir / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if (target / ".complete").is_file():
        return target
    if s3_client is None:
        from lambda_function import aws  # botocore ships with the Lambda runtime

        s3_client = aws.client("s3")

    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        metadata_bytes = _get(s3_client, bucket, prefix + BUNDLE_METADATA_FILE)
        source = f"s3://{bucket}/{prefix}{BUNDLE_METADATA_FILE}"
        _, files = bundle_files(parse_metadata(metadata_bytes, source), source)
        for name, expected in files.items():
            data = _get(s3_client, bucket, prefix + name)
            # Verified before it is written: a bad download is never cached as complete.
            verify_file(data, expected, f"s3://{bucket}/{prefix}{name}")
            (partial / name).write_bytes(data)
        (partial / BUNDLE_METADATA_FILE).write_bytes(metadata_bytes)
        (partial / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _get(s3_client: Any, bucket: str, key: str) -> bytes:
    try:
        return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:  # botocore ClientError, or a fake's equivalent
        error = getattr(exc, "response", {}).get("Error", {})
        code = error.get("Code") or type(exc).__name__
        message = error.get("Message") or str(exc)
        if code in ("NoSuchKey", "404", "NoSuchBucket"):
            raise BundleError(
                f"model bundle not found at s3://{bucket}/{key}: {code} {message}"
            ) from exc
        raise BundleError(
            f"could not download model bundle file s3://{bucket}/{key}: {code} {message}"
        ) from exc
