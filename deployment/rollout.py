"""Model rollout and rollback on the scorer Lambda: data, not infrastructure.

The event source mapping invokes the alias ``live``; which model it serves is a published
Lambda version's ``MODEL_BUNDLE_URI``. Rolling out model version N:

1. verify the bundle directory (``ModelBundle.load``: size and SHA-256 of every file, then a
   servable model) before anything changes; its compiled predictor is not loaded here (the
   deployer runs no code from a bundle);
2. check the function and its alias exist (read only), and that ``$LATEST``'s package can
   serve the bundle: a package without LightGBM (``SCORER_PACKAGE`` = ``compiled``, or unset:
   fails closed) needs the bundle's compiled predictor for the function's architecture
   (``linux-x86_64`` for ``x86_64``), one the ELF audit (``deployment/elf_audit.py``) finds
   loadable on the python3.12 runtime;
3. upload the bundle to ``s3://<models-bucket>/mushroom-classifier/<N>/`` (model files first,
   ``bundle.json`` last), unless that prefix already holds the same ``bundle.json``; a
   different bundle there is never overwritten;
4. if the alias already serves this bundle with ``$LATEST``'s code and settings: stop, a no-op;
5. set ``MODEL_BUNDLE_URI`` on ``$LATEST`` (every other variable kept) and wait until the update
   is ``Successful``; ``$LATEST`` is not what the mapping invokes, so traffic is unaffected;
6. publish a version and move the alias to it. The version's and the alias's descriptions hold
   a record ``model_version=N run_id=R previous_version=V``: V is the version served before.

``follow_code`` publishes ``$LATEST``'s new code or settings (after a ``terraform apply``) with
the model the alias serves now, and moves the alias: Terraform never moves it.

Rollback moves the alias to the ``previous_version`` of its record (and takes over that
version's own record, so a second rollback goes one further back): no upload, no rebuild.

Plain code over injected boto3 clients (Lambda, S3); no MLflow, no training code.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from deployment.elf_audit import RUNTIME_LIBRARIES, ElfError, read_elf, too_new
from lambda_function.compiled import PREDICTOR_ABI
from lambda_function.model import (
    BUNDLE_METADATA_FILE,
    COMPILED_KEY,
    PREDICTOR_LIGHTGBM,
    BundleError,
    ModelBundle,
    bundle_files,
    compiled_entry,
    parse_metadata,
    verify_file,
)

#: The function's environment variable naming the served bundle (lambda_function/config.py).
BUNDLE_ENV = "MODEL_BUNDLE_URI"
#: The function's environment variable naming its package flavour (Terraform: scorer_package).
PACKAGE_ENV = "SCORER_PACKAGE"
PACKAGE_WITH_LIGHTGBM = "lightgbm"
#: Lambda architecture -> the platform tag of a compiled predictor (lambda_function/compiled.py).
ARCHITECTURE_PLATFORMS = {"x86_64": "linux-x86_64", "arm64": "linux-aarch64"}
DEFAULT_ALIAS = "live"
DEFAULT_MODEL_NAME = "mushroom-classifier"
# Configuration that makes two versions serve the same thing (what PublishVersion compares).
_DEPLOYMENT_FIELDS = (
    "CodeSha256",
    "Environment",
    "Handler",
    "Runtime",
    "MemorySize",
    "Timeout",
    "Role",
    "Layers",
    "Architectures",
    "PackageType",
    "ImageConfigResponse",
)
_RECORD = re.compile(
    r"model_version=(?P<model_version>\S+) run_id=(?P<run_id>\S+) "
    r"previous_version=(?P<previous_version>\S+)"
)


class RolloutError(RuntimeError):
    """A rollout or rollback cannot be done; the message says why and what is unchanged."""


@dataclass(frozen=True)
class Target:
    """Where models are served: the function, its alias and the models bucket."""

    function_name: str
    models_bucket: str
    alias: str = DEFAULT_ALIAS
    model_name: str = DEFAULT_MODEL_NAME

    def bundle_uri(self, model_version: str) -> str:
        return f"s3://{self.models_bucket}/{self.model_name}/{model_version}/"


@dataclass(frozen=True)
class ServedRecord:
    """What a published version serves, kept in its description (and the alias's)."""

    model_version: str
    run_id: str
    previous_version: str | None

    def describe(self) -> str:
        text = (
            f"model_version={self.model_version} run_id={self.run_id} "
            f"previous_version={self.previous_version or 'none'}"
        )
        return text[:256]  # Lambda's limit for descriptions

    @classmethod
    def parse(cls, text: str | None) -> "ServedRecord | None":
        match = _RECORD.search(text or "")
        if match is None:
            return None
        previous = match["previous_version"]
        return cls(
            match["model_version"], match["run_id"], None if previous == "none" else previous
        )


@dataclass(frozen=True)
class Served:
    """What the alias serves: a published version, its bundle and the model it holds."""

    function_version: str
    bundle_uri: str
    model_version: str | None
    run_id: str | None
    previous_version: str | None


@dataclass(frozen=True)
class RolloutResult:
    """The outcome of rollout() or rollback(); ``changed`` is False for a no-op."""

    served: Served
    changed: bool
    message: str


def rollout(
    bundle_dir: str | Path,
    model_version: str,
    run_id: str | None,
    *,
    target: Target,
    lambda_client: Any,
    s3_client: Any,
    wait_timeout_s: float = 300.0,
    poll_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RolloutResult:
    """Serve the bundle in ``bundle_dir`` (model ``model_version``) through the alias.

    ``run_id`` (the MLflow run) defaults to the bundle's own ``mlflow_run_id``. See the module
    docstring for the steps; every failure raises RolloutError saying what was left unchanged.
    """
    model_version = str(model_version)
    files = _verified_files(Path(bundle_dir), model_version)
    run_id = run_id or str(files.run_id or "unknown")
    if files.run_id and run_id != files.run_id:
        raise RolloutError(
            f"bundle {bundle_dir} was trained by run {files.run_id}, not {run_id}: nothing changed"
        )
    name = target.function_name
    latest = _function_configuration(lambda_client, name)
    check_package_serves(latest, files.contents, Path(bundle_dir))
    alias = _alias(lambda_client, target)
    current = _function_configuration(lambda_client, name, alias["FunctionVersion"])
    uri = target.bundle_uri(model_version)
    _upload(s3_client, target, model_version, files)

    env = dict((latest.get("Environment") or {}).get("Variables") or {})
    desired = {**env, BUNDLE_ENV: uri}
    wanted = {**latest, "Environment": {"Variables": desired}}
    if _bundle_of(current) == uri and _same_deployment(current, wanted):
        return RolloutResult(
            _served(alias["FunctionVersion"], current, alias),
            changed=False,
            message=(
                f"model version {model_version} is already served by {name}:{target.alias} "
                f"(version {alias['FunctionVersion']}); nothing changed"
            ),
        )

    record = ServedRecord(model_version, run_id, alias["FunctionVersion"])
    return _publish_and_move(
        lambda_client, target, alias, latest, uri, record, (wait_timeout_s, poll_s, sleep, clock)
    )


def follow_code(
    *,
    target: Target,
    lambda_client: Any,
    wait_timeout_s: float = 300.0,
    poll_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RolloutResult:
    """Serve ``$LATEST``'s code and settings with the model the alias serves now.

    After a ``terraform apply`` changed the code or a setting (Terraform publishes a version but
    leaves the alias alone), this moves the alias to a version with the new code and the SAME
    model, also after a rollback (``$LATEST`` may still name the rolled-back model).
    """
    name = target.function_name
    latest = _function_configuration(lambda_client, name)
    alias = _alias(lambda_client, target)
    current = _function_configuration(lambda_client, name, alias["FunctionVersion"])
    uri = _bundle_of(current)
    env = dict((latest.get("Environment") or {}).get("Variables") or {})
    wanted = {**latest, "Environment": {"Variables": {**env, BUNDLE_ENV: uri}}}
    if not uri or _same_deployment(current, wanted):
        return RolloutResult(
            _served(alias["FunctionVersion"], current, alias),
            changed=False,
            message=(
                f"{name}:{target.alias} (version {alias['FunctionVersion']}) already runs the "
                "current code and settings"
                if uri
                else f"{name}:{target.alias} serves no model yet: make rollout"
            ),
        )
    served_now = ServedRecord.parse(alias.get("Description")) or ServedRecord(
        _model_version_of(uri), "unknown", None
    )
    record = ServedRecord(served_now.model_version, served_now.run_id, alias["FunctionVersion"])
    return _publish_and_move(
        lambda_client, target, alias, latest, uri, record, (wait_timeout_s, poll_s, sleep, clock)
    )


def _publish_and_move(
    lambda_client: Any,
    target: Target,
    alias: dict[str, Any],
    latest: dict[str, Any],
    uri: str,
    record: ServedRecord,
    waiting: tuple[float, float, Callable[[float], None], Callable[[], float]],
) -> RolloutResult:
    """Set the bundle on $LATEST if needed, publish a version, move the alias to it."""
    name = target.function_name
    before = alias["FunctionVersion"]
    env = dict((latest.get("Environment") or {}).get("Variables") or {})
    if env.get(BUNDLE_ENV) != uri:
        kwargs = {"RevisionId": latest["RevisionId"]} if latest.get("RevisionId") else {}
        _call(
            f"update {BUNDLE_ENV} of {name} (the alias still serves version {before})",
            lambda_client.update_function_configuration,
            FunctionName=name,
            Environment={"Variables": {**env, BUNDLE_ENV: uri}},
            **kwargs,
        )
        latest = _wait_until_updated(lambda_client, name, *waiting)
    publish = {"RevisionId": latest["RevisionId"]} if latest.get("RevisionId") else {}
    published = _call(
        f"publish a version of {name} (the alias still serves version {before})",
        lambda_client.publish_version,
        FunctionName=name,
        Description=record.describe(),
        CodeSha256=latest["CodeSha256"],
        **publish,
    )
    version = str(published["Version"])
    if _bundle_of(published) != uri:
        raise RolloutError(
            f"version {version} of {name} serves {_bundle_of(published) or 'no model'}, not "
            f"{uri} (changed concurrently?); the alias still serves version {before}"
        )
    moved = _move_alias(lambda_client, target, alias, version, record)
    return RolloutResult(
        _served(version, published, moved),
        changed=True,
        message=(
            f"{name}:{target.alias} now serves model version {record.model_version} (run "
            f"{record.run_id}) as version {version}; before: version {before}"
        ),
    )


def rollback(*, target: Target, lambda_client: Any) -> RolloutResult:
    """Move the alias back to the version it served before the current one (instant)."""
    name = target.function_name
    _function_configuration(lambda_client, name)
    alias = _alias(lambda_client, target)
    record = ServedRecord.parse(alias.get("Description"))
    if record is None or record.previous_version is None:
        raise RolloutError(
            f"nothing to roll back to: {name}:{target.alias} (version {alias['FunctionVersion']}) "
            "records no version served before it (no model was rolled out since it was created)"
        )
    previous = _function_configuration(
        lambda_client, name, record.previous_version, missing="no longer exists"
    )
    uri = _bundle_of(previous)
    if not uri:
        raise RolloutError(
            f"nothing to roll back to: version {record.previous_version} of {name}, served "
            f"before version {alias['FunctionVersion']}, serves no model ({BUNDLE_ENV} unset)"
        )
    restored = ServedRecord.parse(previous.get("Description")) or ServedRecord(
        _model_version_of(uri), "unknown", None
    )
    moved = _move_alias(lambda_client, target, alias, record.previous_version, restored)
    return RolloutResult(
        _served(record.previous_version, previous, moved),
        changed=True,
        message=(
            f"{name}:{target.alias} rolled back from version {alias['FunctionVersion']} (model "
            f"{record.model_version}) to version {record.previous_version} (model "
            f"{restored.model_version})"
        ),
    )


def served(*, target: Target, lambda_client: Any) -> Served:
    """What the alias serves now."""
    alias = _alias(lambda_client, target)
    config = _function_configuration(lambda_client, target.function_name, alias["FunctionVersion"])
    return _served(alias["FunctionVersion"], config, alias)


# --- steps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _BundleFiles:
    """A verified bundle's files as bytes, ``bundle.json`` last."""

    contents: dict[str, bytes]
    run_id: str | None


def check_package_serves(
    configuration: dict[str, Any], contents: dict[str, bytes], directory: Path
) -> None:
    """RolloutError unless the function's package can serve the bundle (module docstring)."""
    name = configuration.get("FunctionName", "the function")
    variables = (configuration.get("Environment") or {}).get("Variables") or {}
    package = variables.get(PACKAGE_ENV, "")
    if package == PACKAGE_WITH_LIGHTGBM:
        return  # LightGBM serves any bundle
    architecture = (configuration.get("Architectures") or ["x86_64"])[0]
    platform = ARCHITECTURE_PLATFORMS.get(architecture, f"linux-{architecture}")
    source = directory / BUNDLE_METADATA_FILE
    metadata = parse_metadata(contents[BUNDLE_METADATA_FILE], source)
    entry = compiled_entry(metadata, platform, source)
    flavour = f"{PACKAGE_ENV}={package}" if package else f"no {PACKAGE_ENV}"
    if entry is None:
        available = sorted(metadata.get(COMPILED_KEY) or {}) or ["none"]
        raise RolloutError(
            f"bundle {directory} has no compiled predictor for {platform} (it has: "
            f"{', '.join(available)}), and {name}'s package has no LightGBM ({flavour}); "
            f"export the model on {platform} (make train there), or deploy the package with "
            f"LightGBM (package_lambda --flavour lightgbm, scorer_package=lightgbm); "
            "nothing changed"
        )
    if entry.get("abi") != PREDICTOR_ABI:  # e.g. ABI 1: the unhardened library (decision 0007)
        raise RolloutError(
            f"{directory / entry['file']} implements predictor ABI {entry.get('abi')!r}, and "
            f"{name}'s package reads {PREDICTOR_ABI} and has no LightGBM ({flavour}); export "
            "the model again (make train), or deploy the package with LightGBM; nothing changed"
        )
    try:
        info = read_elf(contents[entry["file"]])
    except ElfError as exc:
        raise RolloutError(
            f"{directory / entry['file']} is not loadable on {platform}: {exc}; nothing changed"
        ) from exc
    problems = [f"needs {lib}" for lib in info.needed if lib not in RUNTIME_LIBRARIES]
    problems += [v for vs in info.version_needs.values() for v in vs if too_new(v)]
    if problems:
        raise RolloutError(
            f"{directory / entry['file']} would not load on the python3.12 runtime "
            f"({', '.join(problems)}); nothing changed"
        )


def _verified_files(directory: Path, model_version: str) -> _BundleFiles:
    try:
        # LightGBM, not the compiled predictor: the deployer verifies code, it does not run it.
        bundle = ModelBundle.load(directory, predictor=PREDICTOR_LIGHTGBM)
        raw = (directory / BUNDLE_METADATA_FILE).read_bytes()
        source = directory / BUNDLE_METADATA_FILE
        _, listed = bundle_files(parse_metadata(raw, source), source)
        contents = {}
        for file_name, expected in listed.items():
            # The bytes uploaded are the bytes verified (the files could change in between).
            data = (directory / file_name).read_bytes()
            verify_file(data, expected, directory / file_name)
            contents[file_name] = data
    except (BundleError, OSError) as exc:
        raise RolloutError(
            f"bundle {directory} fails verification: {exc}; nothing changed"
        ) from exc
    if bundle.model_version != model_version:
        raise RolloutError(
            f"bundle {directory} holds model version {bundle.model_version}, not "
            f"{model_version}; nothing changed"
        )
    contents[BUNDLE_METADATA_FILE] = raw
    run_id = bundle.metadata.get("mlflow_run_id")
    return _BundleFiles(contents, str(run_id) if run_id else None)


def _upload(s3: Any, target: Target, model_version: str, files: _BundleFiles) -> None:
    """Put the bundle under its version's prefix, unless it is there already."""
    prefix = f"{target.model_name}/{model_version}/"
    metadata = files.contents[BUNDLE_METADATA_FILE]
    try:
        existing = s3.get_object(Bucket=target.models_bucket, Key=prefix + BUNDLE_METADATA_FILE)
        present: bytes | None = existing["Body"].read()
    except Exception as exc:  # botocore ClientError; its class lives on the client
        if _error_code(exc) not in ("NoSuchKey", "404"):
            raise RolloutError(
                f"cannot read s3://{target.models_bucket}/{prefix}{BUNDLE_METADATA_FILE}: "
                f"{_describe(exc)}; nothing changed"
            ) from exc
        present = None
    if present == metadata:
        return
    if present is not None:
        raise RolloutError(
            f"s3://{target.models_bucket}/{prefix} already holds a different bundle for model "
            f"version {model_version}; a published version is never overwritten: nothing changed"
        )
    # Model files first, bundle.json last: a reader that finds bundle.json finds them all.
    for file_name, data in files.contents.items():
        if file_name == BUNDLE_METADATA_FILE:
            continue
        _call(
            f"upload s3://{target.models_bucket}/{prefix}{file_name} (the function is unchanged)",
            s3.put_object,
            Bucket=target.models_bucket,
            Key=prefix + file_name,
            Body=data,
        )
    _call(
        f"upload s3://{target.models_bucket}/{prefix}{BUNDLE_METADATA_FILE} (the function is "
        "unchanged)",
        s3.put_object,
        Bucket=target.models_bucket,
        Key=prefix + BUNDLE_METADATA_FILE,
        Body=metadata,
        ContentType="application/json",
    )


def _wait_until_updated(
    lambda_client: Any,
    name: str,
    timeout_s: float,
    poll_s: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> dict[str, Any]:
    """$LATEST's configuration once its last update succeeded; RolloutError if it failed."""
    deadline = clock() + timeout_s
    while True:
        config = _function_configuration(lambda_client, name)
        status = config.get("LastUpdateStatus", "Successful")
        if status == "Successful":
            return config
        if status == "Failed":
            raise RolloutError(
                f"the update of {name} failed ({config.get('LastUpdateStatusReasonCode')}: "
                f"{config.get('LastUpdateStatusReason')}); nothing published, the alias is "
                "unchanged"
            )
        if clock() >= deadline:
            raise RolloutError(
                f"the update of {name} is still {status} after {timeout_s:g} s; nothing "
                "published, the alias is unchanged (run the rollout again)"
            )
        sleep(poll_s)


def _move_alias(
    lambda_client: Any, target: Target, alias: dict[str, Any], version: str, record: ServedRecord
) -> dict[str, Any]:
    kwargs = {"RevisionId": alias["RevisionId"]} if alias.get("RevisionId") else {}
    return dict(
        _call(
            f"move {target.function_name}:{target.alias} to version {version} (it still serves "
            f"version {alias['FunctionVersion']})",
            lambda_client.update_alias,
            FunctionName=target.function_name,
            Name=target.alias,
            FunctionVersion=version,
            Description=record.describe(),
            **kwargs,
        )
    )


# --- reading -------------------------------------------------------------------------------


def _function_configuration(
    lambda_client: Any, name: str, qualifier: str | None = None, missing: str = "does not exist"
) -> dict[str, Any]:
    kwargs = {"Qualifier": qualifier} if qualifier else {}
    what = f"version {qualifier} of function {name}" if qualifier else f"function {name}"
    try:
        return dict(lambda_client.get_function_configuration(FunctionName=name, **kwargs))
    except Exception as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            hint = "" if qualifier else " (make deploy creates it)"
            raise RolloutError(f"{what} {missing}{hint}; nothing changed") from exc
        raise RolloutError(f"cannot read {what}: {_describe(exc)}; nothing changed") from exc


def _alias(lambda_client: Any, target: Target) -> dict[str, Any]:
    try:
        return dict(lambda_client.get_alias(FunctionName=target.function_name, Name=target.alias))
    except Exception as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            raise RolloutError(
                f"function {target.function_name} has no alias {target.alias} (make deploy "
                "creates it); nothing changed"
            ) from exc
        raise RolloutError(
            f"cannot read alias {target.function_name}:{target.alias}: {_describe(exc)}; "
            "nothing changed"
        ) from exc


def _served(version: str, config: dict[str, Any], alias: dict[str, Any]) -> Served:
    uri = _bundle_of(config)
    record = ServedRecord.parse(alias.get("Description")) or ServedRecord.parse(
        config.get("Description")
    )
    return Served(
        function_version=str(version),
        bundle_uri=uri,
        model_version=record.model_version if record else (_model_version_of(uri) or None),
        run_id=record.run_id if record else None,
        previous_version=record.previous_version if record else None,
    )


def _bundle_of(config: dict[str, Any]) -> str:
    return str(((config.get("Environment") or {}).get("Variables") or {}).get(BUNDLE_ENV) or "")


def _model_version_of(uri: str) -> str:
    """``s3://bucket/mushroom-classifier/3/`` -> ``3``."""
    return uri.rstrip("/").rsplit("/", 1)[-1] if uri else ""


def _same_deployment(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(key) == b.get(key) for key in _DEPLOYMENT_FIELDS)


def _call(what: str, method: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return method(**kwargs)
    except Exception as exc:
        if _error_code(exc) is None:
            raise
        raise RolloutError(f"cannot {what}: {_describe(exc)}") from exc


def _error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, else None."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    return str(response.get("Error", {}).get("Code") or "") or None


def _describe(exc: BaseException) -> str:
    code = _error_code(exc)
    return f"{code}: {exc}" if code else f"{type(exc).__name__}: {exc}"
