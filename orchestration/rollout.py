"""`make rollout`, `make rollback` and the shadow: serve a registered model version, without
Terraform.

``python -m orchestration.rollout [--model-version N]`` rolls out version N (default: the MLflow
registry's ``champion``): its bundle (the local export, else the registered artifacts) goes
through ``deployment.rollout.rollout``. ``--rollback`` moves the alias back to the version served
before, once that version's bundle in S3 verifies; ``--status`` prints what the alias serves, its
shadow and what a rollback would serve.

``--shadow N`` (``make shadow MODEL_VERSION=N``) scores registered version N beside the served
model (``deployment.shadow.start_shadow``); ``--promote`` (``make promote``) serves the shadow
and makes it the registry's ``champion``; ``--shadow-stop`` (``make shadow-stop``) drops it.

The stack comes from ``<MUSHROOM_LOCAL_DIR>/stack.env`` (written by ``make up``/``make deploy``:
endpoint, function, buckets) over the environment; the registry from the training settings.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.settings import Settings
from config.stack_env import read_stack_env, stack_env_path
from deployment.rollout import (
    DEFAULT_ALIAS,
    RolloutError,
    RolloutResult,
    Served,
    Target,
    rollback,
    rollback_target,
    rollout,
    served,
)
from deployment.shadow import (
    ShadowState,
    current_shadow,
    promote_shadow,
    start_shadow,
    stop_shadow,
)
from lambda_function.model import BundleError, ModelBundle

DEFAULT_FUNCTION = "mushroom-scorer"


class NoChampion(RolloutError):
    """The registry has no champion: there is nothing to roll out by default."""


@dataclass(frozen=True)
class Stack:
    """The deployed stack a rollout talks to: settings, target and clients."""

    settings: Settings
    target: Target
    lambda_client: Any
    s3_client: Any


def connect(environ: Mapping[str, str] | None = None, local_dir: Path | None = None) -> Stack:
    """The stack of ``local_dir``'s stack.env (default: the settings' local dir) over ``environ``.

    The file wins over the environment: it is what the last apply wrote, while a process started
    before that apply (a make recipe, a monitoring loop) holds older values.
    """
    import boto3  # noqa: PLC0415 - only when talking to AWS

    environ = dict(os.environ if environ is None else environ)
    local_dir = local_dir or Settings.from_env(environ).local_dir
    env = {**environ, **read_stack_env(stack_env_path(local_dir))}
    settings = Settings.from_env(env)
    session = boto3.session.Session(
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
        region_name=settings.aws_region,
    )
    endpoint = env.get("AWS_ENDPOINT_URL") or None
    target = Target(
        function_name=env.get("FUNCTION_NAME") or DEFAULT_FUNCTION,
        models_bucket=settings.models_bucket,
        alias=env.get("FUNCTION_ALIAS") or DEFAULT_ALIAS,
        model_name=settings.model_name,
    )
    return Stack(
        settings,
        target,
        session.client("lambda", endpoint_url=endpoint),
        session.client("s3", endpoint_url=endpoint),
    )


def _registered(stack: Stack, client: Any, model_version: str) -> Any:
    """The registry's model version; RolloutError when the registry does not have it."""
    try:
        return client.get_model_version(stack.settings.model_name, str(model_version))
    except Exception as exc:  # MlflowException: no such version
        raise RolloutError(
            f"model version {model_version} is not registered: {exc}; nothing changed"
        ) from exc


def roll_out_model(stack: Stack, model_version: str | None = None) -> RolloutResult:
    """Roll out registered version ``model_version`` (default: the champion)."""
    from training.registry import configure_mlflow, get_champion  # noqa: PLC0415 - MLflow

    client, _ = configure_mlflow(stack.settings)
    if model_version is None:
        champion = get_champion(stack.settings, client)
        if champion is None:
            raise NoChampion("the registry has no champion yet (make train): nothing rolled out")
        model_version = champion[0]
    return _with_registered_bundle(stack, client, str(model_version), rollout)


def shadow_model(stack: Stack, model_version: str) -> RolloutResult:
    """Score registered version ``model_version`` as the shadow of the served model."""
    from training.registry import configure_mlflow  # noqa: PLC0415 - MLflow

    client, _ = configure_mlflow(stack.settings)
    return _with_registered_bundle(stack, client, str(model_version), start_shadow)


def _with_registered_bundle(
    stack: Stack, client: Any, model_version: str, action: Callable[..., RolloutResult]
) -> RolloutResult:
    """``action`` (rollout or start_shadow) on registered version ``model_version``'s bundle,
    exported to a temporary directory."""
    registered = _registered(stack, client, model_version)
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = _bundle_dir(stack.settings, registered, Path(tmp))
        return action(
            bundle_dir,
            model_version,
            str(registered.run_id),
            target=stack.target,
            lambda_client=stack.lambda_client,
            s3_client=stack.s3_client,
        )


def promote_shadow_model(stack: Stack) -> RolloutResult:
    """Serve the shadow, then make it the registry's ``champion``, so that ``make rollout``
    and ``make deploy`` (which roll out the champion) keep serving it; the local ``champion/``
    bundle folder follows when this machine has the version's bundle."""
    from training.export import copy_as_champion  # noqa: PLC0415 - training only here
    from training.registry import CHAMPION_ALIAS, configure_mlflow  # noqa: PLC0415 - MLflow

    result = promote_shadow(
        target=stack.target, lambda_client=stack.lambda_client, s3_client=stack.s3_client
    )
    client, _ = configure_mlflow(stack.settings)
    version = str(result.served.model_version)
    _registered(stack, client, version)
    client.set_registered_model_alias(stack.settings.model_name, CHAMPION_ALIAS, version)
    message = f"{result.message}; the registry's champion is now version {version}"
    local = stack.settings.model_bundles_dir / version
    try:
        ModelBundle.load(local)
    except BundleError:  # another machine trained it: the registry and S3 have it, not here
        pass
    else:
        message += f", and {copy_as_champion(local)} a copy of it"
    return RolloutResult(result.served, result.changed, message, result.copy)


def stop_shadow_model(stack: Stack) -> RolloutResult:
    """Serve the same model without its shadow."""
    return stop_shadow(
        target=stack.target, lambda_client=stack.lambda_client, s3_client=stack.s3_client
    )


def shadowing(stack: Stack) -> ShadowState | None:
    """The shadow the alias has now, or None."""
    return current_shadow(target=stack.target, lambda_client=stack.lambda_client)


def deploy(
    variables: Mapping[str, Any] | None = None,
    target: str | None = None,
    local_dir: Path | None = None,
    capture: bool = False,
) -> tuple[dict[str, Any], RolloutResult | None]:
    """``make deploy``: terraform apply (infrastructure), then roll out the champion if any.

    Returns the outputs and the rollout (None without a champion: the function then serves
    the model it was created with, or none).
    """
    from deployment.deploy import terraform_apply  # noqa: PLC0415 - Terraform only here
    from deployment.terraform_cli import LOCAL_DIR  # noqa: PLC0415

    local_dir = local_dir or LOCAL_DIR
    outputs = terraform_apply(variables, target, local_dir, capture=capture)
    try:
        return outputs, roll_out_model(connect(local_dir=local_dir))
    except NoChampion:
        return outputs, None


def roll_back(stack: Stack) -> RolloutResult:
    """The alias back to the version served before (no upload, no rebuild), once its S3 copy
    verifies."""
    return rollback(
        target=stack.target, lambda_client=stack.lambda_client, s3_client=stack.s3_client
    )


def rollback_status(stack: Stack) -> str:
    """One line: what ``make rollback`` would serve, or why it would refuse."""
    try:
        would = rollback_target(
            target=stack.target, lambda_client=stack.lambda_client, s3_client=stack.s3_client
        )
    except RolloutError as exc:
        return f"make rollback: refused ({exc})"
    return (
        f"make rollback: to Lambda version {would.function_version} (model version "
        f"{would.model_version or 'none'}, its S3 copy verifies)"
    )


def can_roll_back(stack: Stack) -> bool:
    """Whether ``make rollback`` has a valid target now (a demo prints its hint only then)."""
    try:
        rollback_target(
            target=stack.target, lambda_client=stack.lambda_client, s3_client=stack.s3_client
        )
    except RolloutError:
        return False
    return True


def serving(stack: Stack) -> Served:
    """What the alias serves now."""
    return served(target=stack.target, lambda_client=stack.lambda_client)


def _bundle_dir(settings: Settings, registered: Any, workdir: Path) -> Path:
    """The version's bundle files as exported: the local copy, else the registered artifacts.

    The files themselves, not a re-save: S3 must receive the bytes the registry holds.
    """
    local = settings.model_bundles_dir / str(registered.version)
    try:
        ModelBundle.load(local)
        return local
    except BundleError:
        pass
    from training.registry import download_bundle  # noqa: PLC0415 - MLflow only here

    return download_bundle(registered.source, workdir)


def describe(served_now: Served, alias: str = DEFAULT_ALIAS) -> str:
    """One line: alias -> Lambda version -> model version (run)."""
    model = served_now.model_version or "none"
    run = f" (run {served_now.run_id})" if served_now.run_id else ""
    shadow = (
        f"; shadow: model version {served_now.shadow_model_version} (answers no one)"
        if served_now.shadow_bundle_uri
        else ""
    )
    return (
        f"alias {alias} -> Lambda version {served_now.function_version} -> model version "
        f"{model}{run}{shadow}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.rollout", description=__doc__)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--model-version", help="registered version (default: the champion)")
    action.add_argument("--rollback", action="store_true", help="back to the version before")
    action.add_argument(
        "--status",
        action="store_true",
        help="print what the alias serves and what a rollback would serve",
    )
    action.add_argument("--shadow", metavar="N", help="score registered version N as the shadow")
    action.add_argument("--promote", action="store_true", help="serve the shadow")
    action.add_argument("--shadow-stop", action="store_true", help="drop the shadow")
    parser.add_argument(
        "--if-champion",
        action="store_true",
        help="without a champion, say so and exit 0 (make deploy on an empty registry)",
    )
    args = parser.parse_args(argv)
    stack = connect()
    try:
        if args.status:
            print(describe(serving(stack), stack.target.alias))
            print(rollback_status(stack))
            return 0
        if args.rollback:
            result = roll_back(stack)
        elif args.shadow:
            result = shadow_model(stack, args.shadow)
        elif args.promote:
            result = promote_shadow_model(stack)
        elif args.shadow_stop:
            result = stop_shadow_model(stack)
        else:
            result = roll_out_model(stack, args.model_version)
    except NoChampion as exc:
        print(f"{'rollout' if args.if_champion else 'error'}: {exc}", file=sys.stderr)
        return 0 if args.if_champion else 1
    except RolloutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(result.message)
    print(describe(result.served, stack.target.alias))
    return 0


if __name__ == "__main__":
    sys.exit(main())
