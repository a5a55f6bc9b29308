"""Shadow deployment on the scorer Lambda: start, promote, stop; data, not infrastructure.

A shadow is a second bundle a published version scores beside the served one
(``SHADOW_BUNDLE_URI``, ``lambda_function/shadow.py``): every scored record carries the
shadow's verdict in its ``shadow`` field, and no consumer ever gets it as the verdict. Each
function here is a rollout (``deployment/rollout.py``) that publishes a version and moves the
alias ``live``:

- ``start_shadow(bundle_dir, N)``: verify the bundle like a rollout does (checksums, a model the
  package can serve), make ``s3://<models-bucket>/mushroom-classifier/N/`` a verified copy, then
  publish a version that serves the same bundle as the alias does now, with
  ``SHADOW_BUNDLE_URI`` set to N's copy; refused when the alias serves N already or serves no
  model;
- ``promote_shadow()``: read the shadow's S3 copy back (every file, size and SHA-256), then
  publish a version serving it as ``MODEL_BUNDLE_URI``, without a shadow;
- ``stop_shadow()``: read the served copy back, then publish a version serving it without the
  shadow;
- ``current_shadow()``: the shadow the alias has now (its model version and bundle), or None.

Each reads the alias's configuration back after moving it (``rollout.read_back``) and records
what it did in the version's and the alias's descriptions, as a rollout does
(``model_version=N run_id=R previous_version=V shadow=M``): ``make rollback`` goes back to the
version before any of them, in one call. The registry is not consulted here (``orchestration``
resolves a registered version to its bundle directory), so the model-deployer policy suffices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployment.rollout import (
    DEFAULT_WAIT,
    RolloutError,
    RolloutResult,
    Served,
    ServedRecord,
    Target,
    Wait,
    _alias_serving,
    _bundle_of,
    _ensure_copy,
    _function_configuration,
    _publish_and_move,
    _serves_already,
    _shadow_of,
    _verified_files,
    check_package_serves,
    read_served_copy,
    served,
)
from lambda_function.bundle_store import model_version_of


@dataclass(frozen=True)
class ShadowState:
    """The shadow of the version the alias serves."""

    function_version: str
    served_model_version: str | None
    model_version: str
    bundle_uri: str


def current_shadow(*, target: Target, lambda_client: Any) -> ShadowState | None:
    """The shadow the alias serves now, or None (read from its version's configuration)."""
    now = served(target=target, lambda_client=lambda_client)
    if not now.shadow_bundle_uri:
        return None
    return ShadowState(
        function_version=now.function_version,
        served_model_version=now.model_version,
        model_version=now.shadow_model_version or model_version_of(now.shadow_bundle_uri),
        bundle_uri=now.shadow_bundle_uri,
    )


def start_shadow(
    bundle_dir: str | Path,
    model_version: str,
    run_id: str | None,
    *,
    target: Target,
    lambda_client: Any,
    s3_client: Any,
    wait: Wait = DEFAULT_WAIT,
) -> RolloutResult:
    """Score model ``model_version`` (the bundle in ``bundle_dir``) as the shadow of the model
    the alias serves; see the module docstring. RolloutError says what was left unchanged."""
    model_version = str(model_version)
    files = _verified_files(Path(bundle_dir), model_version, run_id)
    name = target.function_name
    latest = _function_configuration(lambda_client, name)
    # The shadow runs in the package $LATEST has: it must be able to load it.
    check_package_serves(latest, files.contents, Path(bundle_dir))
    alias, current, now = _alias_serving(lambda_client, target)
    uri = now.bundle_uri
    if not uri:
        raise RolloutError(
            f"{name}:{target.alias} serves no model yet: a shadow needs a served model to be "
            "compared with (make rollout first); nothing changed"
        )
    shadow_uri = target.bundle_uri(model_version)
    if shadow_uri == uri:
        raise RolloutError(
            f"{name}:{target.alias} already serves model version {model_version}: it cannot be "
            "its own shadow; nothing changed"
        )
    copy = _ensure_copy(s3_client, target, model_version, files)
    if _serves_already(current, latest, uri, shadow_uri):
        return RolloutResult(
            now,
            changed=False,
            message=(
                f"model version {model_version} is already the shadow of {name}:{target.alias} "
                f"(version {alias['FunctionVersion']}); {copy.describe()}; the function and "
                "the alias are unchanged"
            ),
            copy=copy,
        )
    record = _record_after(now, model_version)
    result = _publish_and_move(lambda_client, target, alias, latest, uri, record, wait, shadow_uri)
    return RolloutResult(
        result.served,
        True,
        (
            f"{name}:{target.alias} now scores model version {model_version} as the shadow of "
            f"model version {record.model_version} (version {result.served.function_version}; "
            f"before: version {alias['FunctionVersion']}); the shadow answers no one: its "
            f"verdicts are in the records' shadow field; {copy.describe()}"
        ),
        copy,
    )


def promote_shadow(
    *,
    target: Target,
    lambda_client: Any,
    s3_client: Any,
    wait: Wait = DEFAULT_WAIT,
) -> RolloutResult:
    """Serve the shadow's bundle (no shadow any more) once its S3 copy verifies and
    ``$LATEST``'s package can serve it."""
    name = target.function_name
    latest = _function_configuration(lambda_client, name)
    alias, current, now = _alias_serving(lambda_client, target)
    shadow_uri = _shadow_of(current)
    if not shadow_uri:
        raise RolloutError(
            f"{name}:{target.alias} (version {alias['FunctionVersion']}) has no shadow to "
            "promote (make shadow MODEL_VERSION=N starts one); nothing changed"
        )
    contents, metadata = _read_copy(s3_client, shadow_uri, "promote the shadow")
    check_package_serves(latest, contents, Path(shadow_uri))
    model_version = str(metadata.get("model_version") or model_version_of(shadow_uri))
    run_id = str(metadata.get("mlflow_run_id") or "unknown")
    record = ServedRecord(model_version, run_id, alias["FunctionVersion"])
    result = _publish_and_move(lambda_client, target, alias, latest, shadow_uri, record, wait)
    return RolloutResult(
        result.served,
        True,
        (
            f"{name}:{target.alias} now serves the shadow, model version {model_version} (run "
            f"{run_id}), as version {result.served.function_version}, without a shadow; before: "
            f"version {alias['FunctionVersion']} serving model version {now.model_version}; "
            f"its S3 copy {shadow_uri} verifies ({len(contents)} files, size and SHA-256)"
        ),
    )


def stop_shadow(
    *,
    target: Target,
    lambda_client: Any,
    s3_client: Any,
    wait: Wait = DEFAULT_WAIT,
) -> RolloutResult:
    """Serve the same model without the shadow; a no-op when there is none."""
    name = target.function_name
    latest = _function_configuration(lambda_client, name)
    alias, current, now = _alias_serving(lambda_client, target)
    shadow_uri = _shadow_of(current)
    if not shadow_uri:
        return RolloutResult(
            now,
            changed=False,
            message=(
                f"{name}:{target.alias} (version {alias['FunctionVersion']}) has no shadow; "
                "nothing changed"
            ),
        )
    uri = _bundle_of(current)
    # The new version's cold starts load the served bundle again: it must still verify.
    _read_copy(s3_client, uri, "stop the shadow")
    record = _record_after(now, None)
    result = _publish_and_move(lambda_client, target, alias, latest, uri, record, wait)
    return RolloutResult(
        result.served,
        True,
        (
            f"{name}:{target.alias} serves model version {record.model_version} without the "
            f"shadow (model version {model_version_of(shadow_uri)}) as version "
            f"{result.served.function_version}; before: version {alias['FunctionVersion']}"
        ),
    )


def _record_after(now: Served, shadow: str | None) -> ServedRecord:
    """The record of the version to follow ``now`` (what the alias serves), serving the same
    model with the shadow model version ``shadow`` (None: none)."""
    return ServedRecord(
        now.model_version or model_version_of(now.bundle_uri),
        now.run_id or "unknown",
        now.function_version,
        shadow,
    )


def _read_copy(s3: Any, uri: str, action: str) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The bundle at ``uri`` read back from S3 (``bundle.json`` and every file it lists,
    verified by size and SHA-256) and its metadata; RolloutError naming the fix otherwise."""
    contents, metadata, problems = read_served_copy(s3, uri)
    if problems:
        model_version = model_version_of(uri)
        raise RolloutError(
            f"cannot {action}: its bundle {uri} no longer verifies ({'; '.join(problems)}); "
            f"nothing changed (make shadow MODEL_VERSION={model_version} or make rollout "
            f"MODEL_VERSION={model_version} uploads the registry's bundle again)"
        )
    return contents, metadata
