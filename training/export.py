"""Export model bundles to the local bundle folder and to S3.

Layout (team conventions): ``.local/bundles/mushroom-classifier/<version>/`` locally, with
``.local/bundles/mushroom-classifier/champion/`` a copy of the current champion, and
``s3://<models-bucket>/mushroom-classifier/<version>/`` in S3. Every exported bundle carries
``model.txt``, the compiled predictor for this platform (``training/compile.py``; none, with a
log line, when it cannot be compiled, e.g. without gcc) and ``bundle.json``.
boto3 reads ``AWS_ENDPOINT_URL`` itself; without an endpoint or credentials S3 is skipped with a
log line rather than a crash, so ``make train`` works on a laptop with no AWS at all.

``python -m training.export`` re-uploads the local champion bundle (e.g. after the emulator was
restarted and its S3 is empty again) and prints its S3 URI.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from pathlib import Path

from config.settings import CHAMPION_ALIAS, Settings
from lambda_function.model import (
    BUNDLE_METADATA_FILE,
    BUNDLE_MODEL_FILE,
    ModelBundle,
    bundle_files,
    parse_metadata,
)
from training.compile import compile_predictor

log = logging.getLogger(__name__)


def bundle_prefix(settings: Settings, version: str) -> str:
    return f"{settings.model_name}/{version}/"


def save_local(
    bundle: ModelBundle, settings: Settings, *, champion: bool, compile_model: bool = True
) -> Path:
    """Write the bundle (compiled unless ``compile_model`` is False) to
    ``<bundles>/<model>/<version>/``; refresh ``champion/`` if asked."""
    root = settings.model_bundles_dir
    root.mkdir(parents=True, exist_ok=True)
    target = root / str(bundle.model_version)
    artifact = compile_predictor(bundle.model_text) if compile_model else None
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        staged = bundle.save(Path(tmp) / "bundle", compiled=[artifact] if artifact else [])
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    if champion:
        copy_as_champion(target)
    return target


def copy_as_champion(version_dir: Path) -> Path:
    """Make ``champion/`` beside ``version_dir`` a copy of it (staged, then renamed)."""
    root = version_dir.parent
    # A copy (not a symlink) so the folder can be zipped, synced or mounted as it is.
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        staged = Path(tmp) / CHAMPION_ALIAS
        shutil.copytree(version_dir, staged)
        current = root / CHAMPION_ALIAS
        if current.is_symlink() or current.is_file():
            current.unlink()
        elif current.exists():
            shutil.rmtree(current)
        staged.rename(current)
    return current


def _s3_client(settings: Settings):
    import boto3

    return boto3.client("s3", region_name=settings.aws_region)


def upload_bundle_dir(local_dir: Path, settings: Settings, version: str) -> str | None:
    """Upload the bundle's files to ``s3://<models-bucket>/<model>/<version>/``.

    Returns the S3 URI, or None (logged) when no AWS target is configured or the bucket does not
    exist. Other S3 errors propagate: a half-done export must not look like success.
    """
    if not settings.aws_configured:
        log.info(
            "S3 export skipped: no AWS_ENDPOINT_URL and no AWS credentials in the environment "
            "(bundle kept locally in %s)",
            local_dir,
        )
        return None
    from botocore.exceptions import BotoCoreError, ClientError

    client = _s3_client(settings)
    bucket = settings.models_bucket
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        log.info("S3 export skipped: bucket %s not available (%s)", bucket, exc)
        return None
    except BotoCoreError as exc:
        # An endpoint is configured but does not answer (emulator down?): say so loudly, the
        # bundle stays local and `make deploy` publishes it once S3 is back.
        log.warning("S3 export skipped: cannot reach S3 for bucket %s (%s)", bucket, exc)
        return None
    prefix = bundle_prefix(settings, version)
    metadata_path = local_dir / BUNDLE_METADATA_FILE
    _, files = bundle_files(parse_metadata(metadata_path.read_bytes(), metadata_path), local_dir)
    # The files bundle.json lists first, metadata last: a reader that finds bundle.json finds a
    # complete bundle.
    for name in [BUNDLE_MODEL_FILE, *sorted(set(files) - {BUNDLE_MODEL_FILE})]:
        client.upload_file(str(local_dir / name), bucket, prefix + name)
    client.upload_file(str(metadata_path), bucket, prefix + BUNDLE_METADATA_FILE)
    uri = f"s3://{bucket}/{prefix}"
    log.info("bundle version %s exported to %s", version, uri)
    return uri


def export_bundle(
    bundle: ModelBundle, settings: Settings, *, champion: bool = True
) -> tuple[Path, str | None]:
    """Export ``bundle`` locally and, for a champion, to S3; return ``(local_dir, s3_uri)``.

    Non-champion versions are kept locally only (the serving side deploys champions).
    """
    local_dir = save_local(bundle, settings, champion=champion)
    s3_uri = upload_bundle_dir(local_dir, settings, bundle.model_version) if champion else None
    return local_dir, s3_uri


def publish_champion(settings: Settings) -> str | None:
    """Upload the local champion bundle to S3 again; return its URI (None if S3 is skipped)."""
    champion_dir = settings.model_bundles_dir / CHAMPION_ALIAS
    bundle = ModelBundle.load(champion_dir)
    return upload_bundle_dir(champion_dir, settings, bundle.model_version)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    try:
        uri = publish_champion(settings)
    except Exception as exc:  # CLI: one clear line instead of a traceback
        print(f"error: cannot publish the champion bundle: {exc}", file=sys.stderr)
        return 1
    print(uri or "S3 export skipped (see log)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
