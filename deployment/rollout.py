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
3. make ``s3://<models-bucket>/mushroom-classifier/<N>/`` a verified copy of the bundle: an
   empty prefix gets every file (model files first, ``bundle.json`` last); a prefix holding the
   same ``bundle.json`` has every file it lists read back and checked (size and SHA-256), and a
   missing or damaged file is uploaded again from the verified local bundle, then read back; a
   different ``bundle.json`` there is never overwritten (the rollout stops, nothing changed);
4. if the alias already serves this bundle with ``$LATEST``'s code and settings: stop, a no-op
   (the message says whether the S3 copy was verified as it was, or repaired);
5. set ``MODEL_BUNDLE_URI`` on ``$LATEST`` (every other variable kept) and wait until the update
   is ``Successful``; ``$LATEST`` is not what the mapping invokes, so traffic is unaffected;
6. publish a version and move the alias to it. The version's and the alias's descriptions hold
   a record ``model_version=N run_id=R previous_version=V``: V is the version served before.

``follow_code`` publishes ``$LATEST``'s new code or settings (after a ``terraform apply``) with
the model the alias serves now, and moves the alias: Terraform never moves it.

Rollback moves the alias to the ``previous_version`` of its record (and takes over that
version's own record, so a second rollback goes one further back): no upload, no rebuild. It
first reads that version's S3 copy back and refuses a copy that no longer verifies, naming the
fix (``make rollout MODEL_VERSION=<N>`` uploads the registry's bundle again).

Plain code over injected boto3 clients (Lambda, S3); no MLflow, no training code.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from deployment.elf_audit import RUNTIME_LIBRARIES, ElfError, read_elf, too_new
from lambda_function.bundle_store import model_version_of, parse_s3_uri
from lambda_function.compiled import PREDICTOR_ABI
from lambda_function.config import SHADOW_ENV as SHADOW_BUNDLE_ENV
from lambda_function.model import (
    BUNDLE_METADATA_FILE,
    COMPILED_KEY,
    PREDICTOR_LIGHTGBM,
    BundleError,
    ModelBundle,
    bundle_files,
    compiled_entry,
    file_entry,
    parse_metadata,
    verify_file,
)

#: The function's environment variable naming the served bundle (lambda_function/config.py).
BUNDLE_ENV = "MODEL_BUNDLE_URI"
#: The one naming the shadow bundle, scored beside the served one (deployment/shadow.py).
SHADOW_ENV = SHADOW_BUNDLE_ENV
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
    r"previous_version=(?P<previous_version>\S+)(?: shadow=(?P<shadow>\S+))?"
)


class RolloutError(RuntimeError):
    """A rollout or rollback cannot be done; the message says why and what is unchanged."""


@dataclass(frozen=True)
class Wait:
    """How long to wait for a function update to finish, how often to look, and the clock
    (tests pass a fake ``sleep`` and ``clock``)."""

    timeout_s: float = 300.0
    poll_s: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


DEFAULT_WAIT = Wait()


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
    shadow: str | None = None  # the shadow's model version, when the version has one

    def describe(self) -> str:
        text = (
            f"model_version={self.model_version} run_id={self.run_id} "
            f"previous_version={self.previous_version or 'none'}"
        )
        if self.shadow:
            text += f" shadow={self.shadow}"
        return text[:256]  # Lambda's limit for descriptions

    @classmethod
    def parse(cls, text: str | None) -> "ServedRecord | None":
        match = _RECORD.search(text or "")
        if match is None:
            return None
        previous = match["previous_version"]
        return cls(
            match["model_version"],
            match["run_id"],
            None if previous == "none" else previous,
            match["shadow"],
        )


@dataclass(frozen=True)
class Served:
    """What the alias serves: a published version, its bundle and the model it holds."""

    function_version: str
    bundle_uri: str
    model_version: str | None
    run_id: str | None
    previous_version: str | None
    #: The shadow scored beside the served model (deployment/shadow.py), when there is one.
    shadow_bundle_uri: str | None = None
    shadow_model_version: str | None = None


#: What a rollout found under the version's S3 prefix (``CopyCheck.state``).
COPY_VERIFIED = "verified"  # every file there, each with its size and SHA-256
COPY_UPLOADED = "uploaded"  # the prefix was empty: the whole bundle uploaded
COPY_REPAIRED = "repaired"  # same bundle.json, missing or damaged files uploaded again


@dataclass(frozen=True)
class CopyCheck:
    """The served S3 copy of a bundle after a rollout checked it (and uploaded what it lacked)."""

    uri: str
    state: str
    files: int
    problems: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.state == COPY_VERIFIED:
            return f"its S3 copy {self.uri} verifies ({self.files} files, size and SHA-256)"
        if self.state == COPY_UPLOADED:
            return (
                f"its bundle was not in S3: uploaded to {self.uri} from the registry's bundle "
                f"and verified ({self.files} files)"
            )
        return (
            f"its S3 copy {self.uri} was damaged ({'; '.join(self.problems)}): re-uploaded from "
            f"the registry's bundle and verified ({self.files} files)"
        )


@dataclass(frozen=True)
class RolloutResult:
    """The outcome of rollout() or rollback(); ``changed`` is False for a no-op (the alias and
    the function; ``copy`` says what the rollout found and did in S3)."""

    served: Served
    changed: bool
    message: str
    copy: CopyCheck | None = None


def rollout(
    bundle_dir: str | Path,
    model_version: str,
    run_id: str | None,
    *,
    target: Target,
    lambda_client: Any,
    s3_client: Any,
    wait: Wait = DEFAULT_WAIT,
) -> RolloutResult:
    """Serve the bundle in ``bundle_dir`` (model ``model_version``) through the alias.

    ``run_id`` (the MLflow run) defaults to the bundle's own ``mlflow_run_id``. See the module
    docstring for the steps; every failure raises RolloutError saying what was left unchanged.
    """
    model_version = str(model_version)
    files = _verified_files(Path(bundle_dir), model_version, run_id)
    run_id = run_id or files.run_id or "unknown"
    name = target.function_name
    latest = _function_configuration(lambda_client, name)
    check_package_serves(latest, files.contents, Path(bundle_dir))
    alias, current, now = _alias_serving(lambda_client, target)
    uri = target.bundle_uri(model_version)
    copy = _ensure_copy(s3_client, target, model_version, files)

    if _serves_already(current, latest, uri, None):
        return RolloutResult(
            now,
            changed=False,
            message=(
                f"model version {model_version} is already served by {name}:{target.alias} "
                f"(version {alias['FunctionVersion']}); {copy.describe()}; "
                + (
                    "nothing changed"
                    if copy.state == COPY_VERIFIED
                    else "the function and the alias are unchanged"
                )
            ),
            copy=copy,
        )

    record = ServedRecord(model_version, run_id, alias["FunctionVersion"])
    result = _publish_and_move(lambda_client, target, alias, latest, uri, record, wait)
    # A rollout serves exactly model N: a shadow of the version before is not carried over.
    dropped = _shadow_of(current)
    note = f"; the shadow ({model_version_of(dropped)}) was dropped" if dropped else ""
    return RolloutResult(result.served, True, f"{result.message}; {copy.describe()}{note}", copy)


def follow_code(
    *,
    target: Target,
    lambda_client: Any,
    wait: Wait = DEFAULT_WAIT,
) -> RolloutResult:
    """Serve ``$LATEST``'s code and settings with the model the alias serves now.

    After a ``terraform apply`` changed the code or a setting (Terraform publishes a version but
    leaves the alias alone), this moves the alias to a version with the new code and the SAME
    model, also after a rollback (``$LATEST`` may still name the rolled-back model).
    """
    name = target.function_name
    latest = _function_configuration(lambda_client, name)
    alias, current, now = _alias_serving(lambda_client, target)
    uri, shadow = _bundle_of(current), _shadow_of(current)
    if not uri or _serves_already(current, latest, uri, shadow):
        return RolloutResult(
            now,
            changed=False,
            message=(
                f"{name}:{target.alias} (version {alias['FunctionVersion']}) already runs the "
                "current code and settings"
                if uri
                else f"{name}:{target.alias} serves no model yet: make rollout"
            ),
        )
    served_now = ServedRecord.parse(alias.get("Description")) or ServedRecord(
        model_version_of(uri), "unknown", None
    )
    record = ServedRecord(
        served_now.model_version,
        served_now.run_id,
        alias["FunctionVersion"],
        model_version_of(shadow) if shadow else None,
    )
    return _publish_and_move(lambda_client, target, alias, latest, uri, record, wait, shadow)


def serving_variables(
    configuration: dict[str, Any], uri: str, shadow_uri: str | None
) -> dict[str, str]:
    """The configuration's variables, serving ``uri`` with the shadow ``shadow_uri`` (None:
    no shadow); every other variable kept."""
    env = dict((configuration.get("Environment") or {}).get("Variables") or {})
    env[BUNDLE_ENV] = uri
    env.pop(SHADOW_ENV, None)
    if shadow_uri:
        env[SHADOW_ENV] = shadow_uri
    return env


def _publish_and_move(
    lambda_client: Any,
    target: Target,
    alias: dict[str, Any],
    latest: dict[str, Any],
    uri: str,
    record: ServedRecord,
    wait: Wait,
    shadow_uri: str | None = None,
) -> RolloutResult:
    """Set the bundle (and the shadow, or none) on $LATEST if needed, publish a version, move
    the alias to it, and read back what the alias serves."""
    name = target.function_name
    before = alias["FunctionVersion"]
    env = dict((latest.get("Environment") or {}).get("Variables") or {})
    desired = serving_variables(latest, uri, shadow_uri)
    if env != desired:
        kwargs = {"RevisionId": latest["RevisionId"]} if latest.get("RevisionId") else {}
        _call(
            f"update {BUNDLE_ENV} and {SHADOW_ENV} of {name} (the alias still serves version "
            f"{before})",
            lambda_client.update_function_configuration,
            FunctionName=name,
            Environment={"Variables": desired},
            **kwargs,
        )
        latest = _wait_until_updated(lambda_client, name, wait)
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
    if _bundle_of(published) != uri or _shadow_of(published) != (shadow_uri or ""):
        raise RolloutError(
            f"version {version} of {name} serves {_bundle_of(published) or 'no model'} with "
            f"shadow {_shadow_of(published) or 'none'}, not {uri} with shadow "
            f"{shadow_uri or 'none'} (changed concurrently?); the alias still serves version "
            f"{before}"
        )
    moved = _move_alias(lambda_client, target, alias, version, record)
    read_back(lambda_client, target, version, uri, shadow_uri)
    return RolloutResult(
        _served(version, published, moved),
        changed=True,
        message=(
            f"{name}:{target.alias} now serves model version {record.model_version} (run "
            f"{record.run_id}) as version {version}; before: version {before}"
        ),
    )


@dataclass(frozen=True)
class _RollbackPlan:
    alias: dict[str, Any]
    record: ServedRecord  # what the alias serves now
    version: str  # the version to go back to
    config: dict[str, Any]  # its configuration
    restored: ServedRecord  # what it serves


def _rollback_plan(target: Target, lambda_client: Any, s3_client: Any) -> _RollbackPlan:
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
            f"before version {alias['FunctionVersion']}, serves no model ({BUNDLE_ENV} unset); "
            "nothing changed (make rollout MODEL_VERSION=N serves another registered version)"
        )
    restored = ServedRecord.parse(previous.get("Description")) or ServedRecord(
        model_version_of(uri), "unknown", None
    )
    problems = verify_served_copy(s3_client, uri)
    if problems:
        raise RolloutError(
            f"refusing to roll back to version {record.previous_version} of {name} (model "
            f"{restored.model_version}): its bundle {uri} no longer verifies "
            f"({'; '.join(problems)}); nothing changed. To serve model "
            f"{restored.model_version} again, run make rollout "
            f"MODEL_VERSION={restored.model_version} (it uploads the registry's bundle again)"
        )
    return _RollbackPlan(alias, record, record.previous_version, previous, restored)


def rollback_target(*, target: Target, lambda_client: Any, s3_client: Any) -> Served:
    """What a rollback would serve, checked as rollback() checks it (RolloutError if none)."""
    plan = _rollback_plan(target, lambda_client, s3_client)
    return _served(plan.version, plan.config, {"Description": plan.restored.describe()})


def rollback(*, target: Target, lambda_client: Any, s3_client: Any) -> RolloutResult:
    """Move the alias back to the version it served before the current one (instant), once
    that version's S3 copy of its bundle verifies."""
    plan = _rollback_plan(target, lambda_client, s3_client)
    moved = _move_alias(lambda_client, target, plan.alias, plan.version, plan.restored)
    restored = _served(plan.version, plan.config, moved)
    shadow = (
        f"; it scores model {restored.shadow_model_version} as its shadow"
        if restored.shadow_bundle_uri
        else ""
    )
    return RolloutResult(
        restored,
        changed=True,
        message=(
            f"{target.function_name}:{target.alias} rolled back from version "
            f"{plan.alias['FunctionVersion']} (model {plan.record.model_version}) to version "
            f"{plan.version} (model {plan.restored.model_version}), whose S3 copy verifies"
            f"{shadow}"
        ),
    )


def served(*, target: Target, lambda_client: Any) -> Served:
    """What the alias serves now."""
    return _alias_serving(lambda_client, target)[2]


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


def _verified_files(directory: Path, model_version: str, run_id: str | None) -> _BundleFiles:
    """The bundle's files, verified (checksums, a servable model ``model_version``, trained by
    ``run_id`` when one is given); RolloutError naming what failed otherwise."""
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
    trained_by = bundle.metadata.get("mlflow_run_id")
    trained_by = str(trained_by) if trained_by else None
    if run_id and trained_by and run_id != trained_by:
        raise RolloutError(
            f"bundle {directory} was trained by run {trained_by}, not {run_id}: nothing changed"
        )
    return _BundleFiles(contents, trained_by)


def _ensure_copy(s3: Any, target: Target, model_version: str, files: _BundleFiles) -> CopyCheck:
    """Make the version's prefix a verified copy of ``files`` (module docstring, step 3)."""
    bucket, prefix = target.models_bucket, f"{target.model_name}/{model_version}/"
    uri = f"s3://{bucket}/{prefix}"
    metadata = files.contents[BUNDLE_METADATA_FILE]
    present = _get_object(s3, bucket, prefix + BUNDLE_METADATA_FILE)
    if present is not None and present != metadata:
        raise RolloutError(
            f"{uri} already holds a different bundle for model version {model_version}; a "
            "published version is never overwritten: nothing changed"
        )
    listed = {name: file_entry(data) for name, data in files.contents.items()}
    del listed[BUNDLE_METADATA_FILE]
    if present is None:
        # Model files first, bundle.json last: a reader that finds bundle.json finds them all.
        _put(s3, bucket, prefix, files, [*listed, BUNDLE_METADATA_FILE])
        state, problems = COPY_UPLOADED, {}
    else:
        problems = copy_problems(s3, bucket, prefix, listed)
        if problems:
            _put(s3, bucket, prefix, files, list(problems))
        state = COPY_REPAIRED if problems else COPY_VERIFIED
    if state != COPY_VERIFIED:  # read back what was put: S3 must now hold these bytes
        still = copy_problems(s3, bucket, prefix, listed)
        if _get_object(s3, bucket, prefix + BUNDLE_METADATA_FILE) != metadata:
            still[BUNDLE_METADATA_FILE] = f"{BUNDLE_METADATA_FILE} missing or different"
        if still:
            raise RolloutError(
                f"{uri} does not verify after the upload ({'; '.join(still.values())}); the "
                "function and the alias are unchanged"
            )
    return CopyCheck(uri, state, len(listed) + 1, tuple(problems.values()))


def copy_problems(
    s3: Any, bucket: str, prefix: str, listed: dict[str, dict[str, Any]]
) -> dict[str, str]:
    """What is wrong with each listed file under ``prefix`` (name -> problem), read back and
    checked against its size and SHA-256; empty when every file verifies."""
    return read_copy_files(s3, bucket, prefix, listed)[1]


def read_copy_files(
    s3: Any, bucket: str, prefix: str, listed: dict[str, dict[str, Any]]
) -> tuple[dict[str, bytes], dict[str, str]]:
    """Each listed file under ``prefix`` read back and checked against its size and SHA-256:
    the bytes of those that verify, and what is wrong with the others (name -> problem)."""
    contents, problems = {}, {}
    for name, expected in sorted(listed.items()):
        data = _get_object(s3, bucket, prefix + name)
        if data is None:
            problems[name] = f"{name} missing"
            continue
        try:
            verify_file(data, expected, name)
        except BundleError as exc:
            problems[name] = str(exc)
            continue
        contents[name] = data
    return contents, problems


def verify_served_copy(s3: Any, uri: str) -> list[str]:
    """What is wrong with the bundle at ``uri`` (``s3://bucket/prefix/``), read back from S3:
    its ``bundle.json`` and every file it lists (size and SHA-256); empty when it verifies."""
    return read_served_copy(s3, uri)[2]


def read_served_copy(s3: Any, uri: str) -> tuple[dict[str, bytes], dict[str, Any], list[str]]:
    """The bundle at ``uri`` read back from S3: the files that verify (``bundle.json``
    included), its metadata, and what is wrong with it (empty when every file verifies)."""
    if not uri.startswith("s3://"):
        return {}, {}, [f"{uri} is not an s3:// URI"]
    try:
        bucket, prefix = parse_s3_uri(uri)
    except BundleError as exc:
        return {}, {}, [str(exc)]
    raw = _get_object(s3, bucket, prefix + BUNDLE_METADATA_FILE)
    if raw is None:
        return {}, {}, [f"{BUNDLE_METADATA_FILE} missing"]
    try:
        metadata = parse_metadata(raw, uri + BUNDLE_METADATA_FILE)
        _, listed = bundle_files(metadata, uri)
    except BundleError as exc:
        return {}, {}, [str(exc)]
    contents, problems = read_copy_files(s3, bucket, prefix, listed)
    contents[BUNDLE_METADATA_FILE] = raw
    return contents, metadata, list(problems.values())


def _get_object(s3: Any, bucket: str, key: str) -> bytes | None:
    """The object's bytes, None when there is no such key; RolloutError when it cannot tell."""
    try:
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except Exception as exc:  # botocore ClientError; its class lives on the client
        if _error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise RolloutError(
            f"cannot read s3://{bucket}/{key}: {_describe(exc)}; the function and the alias "
            "are unchanged"
        ) from exc


def _put(s3: Any, bucket: str, prefix: str, files: _BundleFiles, names: list[str]) -> None:
    for name in names:
        extra = {"ContentType": "application/json"} if name == BUNDLE_METADATA_FILE else {}
        _call(
            f"upload s3://{bucket}/{prefix}{name} (the function is unchanged)",
            s3.put_object,
            Bucket=bucket,
            Key=prefix + name,
            Body=files.contents[name],
            **extra,
        )


def _wait_until_updated(lambda_client: Any, name: str, wait: Wait) -> dict[str, Any]:
    """$LATEST's configuration once its last update succeeded; RolloutError if it failed."""
    deadline = wait.clock() + wait.timeout_s
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
        if wait.clock() >= deadline:
            raise RolloutError(
                f"the update of {name} is still {status} after {wait.timeout_s:g} s; nothing "
                "published, the alias is unchanged (run the rollout again)"
            )
        wait.sleep(wait.poll_s)


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


def _alias_serving(
    lambda_client: Any, target: Target
) -> tuple[dict[str, Any], dict[str, Any], Served]:
    """The alias, the configuration of the version it serves, and what that serves."""
    alias = _alias(lambda_client, target)
    version = alias["FunctionVersion"]
    config = _function_configuration(lambda_client, target.function_name, version)
    return alias, config, _served(version, config, alias)


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
    shadow = _shadow_of(config)
    return Served(
        function_version=str(version),
        bundle_uri=uri,
        model_version=record.model_version if record else (model_version_of(uri) or None),
        run_id=record.run_id if record else None,
        previous_version=record.previous_version if record else None,
        shadow_bundle_uri=shadow or None,
        shadow_model_version=(
            (record.shadow if record and record.shadow else model_version_of(shadow))
            if shadow
            else None
        ),
    )


def _bundle_of(config: dict[str, Any]) -> str:
    return str(((config.get("Environment") or {}).get("Variables") or {}).get(BUNDLE_ENV) or "")


def _shadow_of(config: dict[str, Any]) -> str:
    return str(((config.get("Environment") or {}).get("Variables") or {}).get(SHADOW_ENV) or "")


def read_back(
    lambda_client: Any, target: Target, version: str, uri: str, shadow_uri: str | None
) -> dict[str, Any]:
    """The alias's configuration, read back after a move: RolloutError unless the alias is on
    ``version`` serving ``uri`` with the shadow ``shadow_uri`` (None: none)."""
    name = target.function_name
    alias = _alias(lambda_client, target)
    config = _function_configuration(lambda_client, name, target.alias)
    found = (str(alias["FunctionVersion"]), _bundle_of(config), _shadow_of(config))
    if found != (str(version), uri, shadow_uri or ""):
        raise RolloutError(
            f"{name}:{target.alias} reads back as version {found[0]} serving "
            f"{found[1] or 'no model'} with shadow {found[2] or 'none'}, not version {version} "
            f"serving {uri} with shadow {shadow_uri or 'none'} (moved concurrently?)"
        )
    return config


def _serves_already(
    current: dict[str, Any], latest: dict[str, Any], uri: str, shadow_uri: str | None
) -> bool:
    """Whether ``current`` is what publishing ``$LATEST`` serving ``uri`` with the shadow
    ``shadow_uri`` would give: same code, settings and bundles (a rollout would be a no-op)."""
    wanted = {**latest, "Environment": {"Variables": serving_variables(latest, uri, shadow_uri)}}
    return all(current.get(key) == wanted.get(key) for key in _DEPLOYMENT_FIELDS)


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
