"""Terraform plan / apply / destroy against the current target (make plan, make deploy).

``python -m deployment.deploy plan|apply|destroy|outputs [--target moto|localstack|aws]
[--lambda-zip PATH] [--model-version N | --model-bundle-uri URI] [--image-uri URI]``

- Target: ``--target``, else ``AWS_TARGET``, else the running emulator, else moto. Emulators use
  ``vars/local.tfvars`` and the endpoint from ``make up``; ``aws`` uses ``vars/aws.tfvars`` and the
  normal AWS credential chain (emulator endpoint and dummy keys are dropped).
- State: one local state per target in ``.local/terraform/<target>/`` so that an emulator run never
  touches AWS state (use a remote backend for a shared AWS account).
- ``apply`` changes infrastructure only. The served model is data: ``--model-version`` or
  ``--model-bundle-uri`` only set the model a newly created function starts with; afterwards
  ``make rollout`` (``deployment/rollout.py``) changes it and Terraform ignores it. After an
  apply that changed code or settings, the alias ``live`` is moved to them with the model it
  serves (``follow_code``): Terraform publishes versions but never moves the alias.
- Variables given once (zip path, model version, ...) are remembered in
  ``.local/terraform/<target>/deploy.tfvars.json``: a later plan or apply reuses them, and a new
  model version redeploys with ``--model-version N`` without editing any file.
- After apply, every scalar output goes to ``.local/stack.env`` as ``export <OUTPUT_NAME>=value``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from config.stack_env import (
    EMULATOR_KEYS,
    read_stack_env,
    read_state,
    stack_env_path,
    update_stack_env,
)
from deployment.terraform_cli import (
    LOCAL_DIR,
    ROOT,
    TERRAFORM_DIR,
    TerraformError,
    run_terraform,
    state_dir,
)

TARGETS = ("moto", "localstack", "aws")
VARS_NAME = "deploy.tfvars.json"
OUTPUTS_NAME = "outputs.json"
BUILD_DIR = ROOT / "build"


class DeployError(RuntimeError):
    """The deployment cannot run (no emulator, no package, ...)."""


def resolve_target(target: str | None = None, local_dir: Path = LOCAL_DIR) -> str:
    """`target`, else AWS_TARGET, else the running emulator's target, else moto."""
    chosen = target or os.environ.get("AWS_TARGET") or ""
    if not chosen:
        state = read_state(local_dir)
        chosen = state.target if state is not None else "moto"
    if chosen not in TARGETS:
        raise DeployError(f"unknown target {chosen!r}; choose one of {', '.join(TARGETS)}")
    return chosen


def endpoint_for(target: str, local_dir: Path = LOCAL_DIR) -> str | None:
    """The emulator endpoint for `target` (None for real AWS)."""
    if target == "aws":
        return None
    state = read_state(local_dir)
    if state is not None:
        if state.target != target:
            raise DeployError(
                f"{state.target} is running (make up), not {target}: "
                f"run make down, then make up AWS_TARGET={target}"
            )
        return state.endpoint
    # No emulator started by make up: an endpoint given by the user (e.g. a shared LocalStack).
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or read_stack_env(stack_env_path(local_dir)).get(
        "AWS_ENDPOINT_URL"
    )
    if not endpoint:
        raise DeployError(f"no {target} endpoint: start the emulator first (make up)")
    return endpoint


def var_file(target: str) -> Path:
    """The committed tfvars file of a target."""
    return TERRAFORM_DIR / "vars" / ("aws.tfvars" if target == "aws" else "local.tfvars")


def _subprocess_env(target: str, endpoint: str | None) -> dict[str, str]:
    """Environment overrides for terraform: AWS gets no emulator settings, emulators get theirs."""
    env = {k: v for k, v in os.environ.items() if k not in EMULATOR_KEYS}
    if target == "aws":
        env.update(
            {k: os.environ[k] for k in ("AWS_REGION", "AWS_DEFAULT_REGION") if k in os.environ}
        )
        # Real credentials may legitimately be in the environment; the emulators' dummies may not.
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if os.environ.get(key) not in (None, "test"):
                env[key] = os.environ[key]
    else:
        env.update(
            {
                "AWS_ENDPOINT_URL": endpoint or "",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
            }
        )
    return env


class _Terraform:
    """Terraform commands bound to one target's state, data dir and variables."""

    def __init__(self, target: str | None, local_dir: Path) -> None:
        local_dir = local_dir.resolve()  # terraform runs with -chdir=terraform
        self.target = resolve_target(target, local_dir)
        self.local_dir = local_dir
        self.dir = state_dir(self.target, local_dir)
        self.data_dir = self.dir / ".terraform"
        self.endpoint = endpoint_for(self.target, local_dir)
        self.env = _subprocess_env(self.target, self.endpoint)

    def run(self, args: Sequence[str], **kwargs: Any) -> Any:
        return run_terraform(
            args, data_dir=self.data_dir, env=self.env, local_dir=self.local_dir, **kwargs
        )

    def init(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run(
            [
                "init",
                "-input=false",
                "-no-color",
                f"-backend-config=path={self.dir / 'terraform.tfstate'}",
            ],
            capture=True,
        )

    @property
    def saved_vars_path(self) -> Path:
        return self.dir / VARS_NAME

    def saved_vars(self) -> dict[str, Any]:
        if not self.saved_vars_path.exists():
            return {}
        return dict(json.loads(self.saved_vars_path.read_text()))

    def write_vars(self, variables: Mapping[str, Any] | None, need_package: bool = True) -> Path:
        """Merge `variables` over the remembered ones, add the target's own, write the file."""
        merged = self.saved_vars()
        merged.update({k: v for k, v in (variables or {}).items() if v is not None})
        if merged.get("lambda_zip_path"):
            merged["lambda_zip_path"] = str(Path(merged["lambda_zip_path"]).resolve())
        zip_package = (
            merged.get("package_type", "Image" if self.target == "aws" else "Zip") == "Zip"
        )
        if need_package and zip_package:
            zip_path = merged.get("lambda_zip_path")
            if not zip_path:
                raise DeployError("no Lambda zip: run make package, or pass --lambda-zip PATH")
            if not Path(zip_path).is_file() and "lambda_zip_path" not in (variables or {}):
                # The remembered zip was replaced by a newer build (make package keeps one):
                # build again; the build is deterministic, so unchanged code redeploys nothing.
                zip_path = _default_lambda_zip(self.target) or zip_path
                merged["lambda_zip_path"] = zip_path
            if not Path(zip_path).is_file():
                raise DeployError(f"Lambda zip {zip_path} does not exist: run make package")
        merged["aws_endpoint_url"] = self.endpoint
        if self.target == "localstack":
            merged.setdefault("create_ecr_repository", False)  # Community edition has no ECR
            # ... nor Glue and Athena; its Firehose reads the streams itself.
            merged.setdefault("archive_query_catalog_enabled", False)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.saved_vars_path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
        return self.saved_vars_path

    def var_args(self) -> list[str]:
        return [f"-var-file={var_file(self.target)}", f"-var-file={self.saved_vars_path}"]


def _timed(label: str, start: float) -> None:
    print(f"[deploy] {label} in {time.monotonic() - start:.1f} s", file=sys.stderr)


def _outputs(tf: _Terraform) -> dict[str, Any]:
    result = tf.run(["output", "-json", "-no-color"], capture=True)
    raw = json.loads(result.stdout or "{}")
    return {name: item["value"] for name, item in raw.items()}


def read_outputs(target: str | None = None, local_dir: Path = LOCAL_DIR) -> dict[str, Any]:
    """The stack's Terraform outputs as {name: value} (empty when nothing is deployed)."""
    tf = _Terraform(target, local_dir)
    if not (tf.dir / "terraform.tfstate").exists():
        return {}
    tf.init()
    return _outputs(tf)


def write_outputs_env(outputs: Mapping[str, Any], target: str, local_dir: Path = LOCAL_DIR) -> None:
    """Record outputs in .local/terraform/<target>/outputs.json and scalars in stack.env."""
    directory = state_dir(target, local_dir)
    directory.mkdir(parents=True, exist_ok=True)
    previous = directory / OUTPUTS_NAME
    stale = (
        [k.upper() for k in json.loads(previous.read_text()) if k not in outputs]
        if previous.exists()
        else []
    )
    (directory / OUTPUTS_NAME).write_text(
        json.dumps(dict(outputs), indent=2, sort_keys=True) + "\n"
    )
    scalars = {
        name.upper(): (str(value).lower() if isinstance(value, bool) else str(value))
        for name, value in outputs.items()
        if isinstance(value, (str, int, float, bool))
    }
    stale = [key for key in stale if key not in EMULATOR_KEYS]
    update_stack_env(stack_env_path(local_dir), scalars, remove=stale)


def terraform_plan(
    variables: Mapping[str, Any] | None = None,
    target: str | None = None,
    local_dir: Path = LOCAL_DIR,
    capture: bool = False,
) -> int:
    """`terraform plan -detailed-exitcode`: 0 = no changes, 2 = changes (errors raise)."""
    tf = _Terraform(target, local_dir)
    start = time.monotonic()
    tf.init()
    tf.write_vars(variables)
    result = tf.run(
        ["plan", "-input=false", "-detailed-exitcode", "-compact-warnings", *tf.var_args()],
        check=False,
        capture=capture,
    )
    if result.returncode not in (0, 2):
        detail = f"\n{result.stderr}" if capture else ""
        raise TerraformError(f"terraform plan failed (exit {result.returncode}){detail}")
    _timed(f"plan ({tf.target})", start)
    return int(result.returncode)


def terraform_apply(
    variables: Mapping[str, Any] | None = None,
    target: str | None = None,
    local_dir: Path = LOCAL_DIR,
    capture: bool = False,
) -> dict[str, Any]:
    """init + apply with the target's tfvars and `variables`; returns the outputs.

    Useful variables: lambda_zip_path, model_bundle_uri or model_version, image_uri (AWS).
    The outputs also go to .local/stack.env (emulator lines kept).
    """
    tf = _Terraform(target, local_dir)
    start = time.monotonic()
    tf.init()
    tf.write_vars(variables)
    tf.run(
        ["apply", "-input=false", "-auto-approve", "-compact-warnings", *tf.var_args()],
        capture=capture,
    )
    _timed(f"apply ({tf.target})", start)
    outputs = _outputs(tf)
    write_outputs_env(outputs, tf.target, local_dir)
    if outputs.get("function_alias"):
        _follow_code(tf, outputs)
    return outputs


def _follow_code(tf: _Terraform, outputs: Mapping[str, Any]) -> None:
    """Serve the code and settings just applied with the model the alias serves."""
    import boto3  # noqa: PLC0415

    from deployment.rollout import Target, follow_code  # noqa: PLC0415

    env = tf.env
    client = boto3.client(
        "lambda",
        endpoint_url=tf.endpoint,
        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
    )
    target = Target(
        function_name=str(outputs["function_name"]),
        models_bucket=str(outputs.get("models_bucket") or ""),
        alias=str(outputs["function_alias"]),
    )
    result = follow_code(target=target, lambda_client=client)
    print(f"[deploy] {result.message}", file=sys.stderr)


def terraform_destroy(
    target: str | None = None, local_dir: Path = LOCAL_DIR, capture: bool = False
) -> None:
    """Destroy the target's stack and remove its outputs from .local/stack.env."""
    tf = _Terraform(target, local_dir)
    start = time.monotonic()
    tf.init()
    tf.write_vars(None, need_package=False)
    tf.run(
        ["destroy", "-input=false", "-auto-approve", "-compact-warnings", *tf.var_args()],
        capture=capture,
    )
    _timed(f"destroy ({tf.target})", start)
    outputs_path = tf.dir / OUTPUTS_NAME
    if outputs_path.exists():
        keys = [name.upper() for name in json.loads(outputs_path.read_text())]
        # Never drop the emulator's own lines (AWS_REGION is both).
        update_stack_env(
            stack_env_path(local_dir), remove=[k for k in keys if k not in EMULATOR_KEYS]
        )
        outputs_path.unlink()


def _default_lambda_zip(target: str) -> str | None:
    """Build the zip with deployment.package_lambda when it exists (emulators deploy a zip)."""
    if target == "aws":
        return None
    try:
        from deployment.package_lambda import build_lambda_zip  # optional: another helper owns it
    except ImportError:
        return None
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    return str(build_lambda_zip(BUILD_DIR))


def _cli_variables(args: argparse.Namespace, target: str) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    if args.lambda_zip:
        variables["lambda_zip_path"] = args.lambda_zip
    elif args.command == "apply":
        built = _default_lambda_zip(target)
        if built:
            variables["lambda_zip_path"] = built
    if args.model_version is not None:
        # A version replaces an explicit URI remembered from an earlier deploy.
        variables.update(model_version=str(args.model_version), model_bundle_uri="")
    if args.model_bundle_uri is not None:
        variables["model_bundle_uri"] = args.model_bundle_uri
    if args.image_uri:
        variables["image_uri"] = args.image_uri
    return variables


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m deployment.deploy", description=__doc__)
    parser.add_argument("command", choices=["plan", "apply", "destroy", "outputs"])
    parser.add_argument("--target", choices=TARGETS, default=None)
    parser.add_argument(
        "--lambda-zip", help="Lambda zip to deploy (default: deployment.package_lambda)"
    )
    parser.add_argument(
        "--model-version", help="model version a newly created function starts with"
    )
    parser.add_argument(
        "--model-bundle-uri", help="explicit initial MODEL_BUNDLE_URI (wins over a version)"
    )
    parser.add_argument("--image-uri", help="container image <repo>@sha256:... (AWS, Image)")
    args = parser.parse_args(argv)
    try:
        target = resolve_target(args.target)
        if args.command == "plan":
            terraform_plan(_cli_variables(args, target), target)
        elif args.command == "apply":
            outputs = terraform_apply(_cli_variables(args, target), target)
            print(
                f"deployed {outputs.get('function_name')}:{outputs.get('function_alias')} "
                f"({target}); outputs in {stack_env_path()}"
            )
        elif args.command == "destroy":
            terraform_destroy(target)
        else:
            print(json.dumps(read_outputs(target), indent=2, sort_keys=True))
    except (DeployError, TerraformError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
