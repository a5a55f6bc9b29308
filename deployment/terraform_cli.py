"""Run Terraform with a CLI configuration that works offline.

This machine carries the ``hashicorp/aws`` provider in a filesystem mirror and has no registry
access; a laptop with internet has no mirror. The CLI configuration written here uses the mirror
when one exists (``TF_PROVIDER_MIRROR``, or a ``registry.terraform.io`` directory under a few
well-known plugin locations) and the registry otherwise, so the committed Terraform never names
a machine path.

``python -m deployment.terraform_cli validate`` runs ``init -backend=false`` and ``validate``;
``python -m deployment.terraform_cli config`` writes the configuration and prints its path.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from config.settings import LOCAL_DIR, REPO_ROOT

ROOT = REPO_ROOT
TERRAFORM_DIR = REPO_ROOT / "terraform"
CLI_CONFIG_NAME = "terraformrc"
MIRROR_ENV = "TF_PROVIDER_MIRROR"
REGISTRY_HOST = "registry.terraform.io"
# Providers the project needs; only these are taken from the mirror.
PROVIDERS = ("hashicorp/aws",)
# Where machine images and `terraform providers mirror` usually put plugins.
MIRROR_CANDIDATES = (
    Path("/opt/tf-plugins"),
    Path("/usr/local/share/terraform/plugins"),
    Path("/usr/share/terraform/plugins"),
    Path.home() / ".terraform.d" / "plugins",
    Path.home() / ".local" / "share" / "terraform" / "plugins",
)
_SEARCH_DEPTH = 3


class TerraformError(RuntimeError):
    """Terraform is missing or a Terraform command failed."""


def _find_registry_dir(base: Path, depth: int = _SEARCH_DEPTH) -> Path | None:
    """Return the first registry.terraform.io directory at most `depth` levels below `base`."""
    if not base.is_dir():
        return None
    if base.name == REGISTRY_HOST:
        return base
    level = [base]
    for _ in range(depth):
        next_level: list[Path] = []
        for directory in level:
            try:
                children = sorted(p for p in directory.iterdir() if p.is_dir())
            except OSError:
                continue
            for child in children:
                if child.name == REGISTRY_HOST:
                    return child
                next_level.append(child)
        level = next_level
    return None


def find_provider_mirror(
    env: Mapping[str, str] | None = None, candidates: Sequence[Path] = MIRROR_CANDIDATES
) -> Path | None:
    """Return the root of a filesystem mirror (the directory holding registry.terraform.io).

    `TF_PROVIDER_MIRROR` wins (either the root or the registry.terraform.io directory itself);
    an explicit value that holds no mirror is an error rather than a silent fallback.
    """
    env = os.environ if env is None else env
    explicit = env.get(MIRROR_ENV, "").strip()
    if explicit:
        found = _find_registry_dir(Path(explicit).expanduser())
        if found is None:
            raise TerraformError(
                f"{MIRROR_ENV}={explicit} holds no '{REGISTRY_HOST}' directory; "
                "point it at a provider mirror (terraform providers mirror <dir>) or unset it"
            )
        return found.parent
    for candidate in candidates:
        found = _find_registry_dir(candidate)
        if found is not None:
            return found.parent
    return None


def render_cli_config(mirror: Path | None, providers: Sequence[str] = PROVIDERS) -> str:
    """Return the text of a Terraform CLI configuration (mirror first, registry for the rest)."""
    if mirror is None:
        return "# No provider mirror found: providers come from the registry.\n"
    names = ", ".join(f'"{REGISTRY_HOST}/{p}"' for p in providers)
    return (
        "# Written by deployment/terraform_cli.py: providers from the local mirror, others direct\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        f"    include = [{names}]\n"
        "  }\n"
        "  direct {\n"
        f"    exclude = [{names}]\n"
        "  }\n"
        "}\n"
    )


def write_cli_config(
    local_dir: Path = LOCAL_DIR, mirror: Path | None = None, env: Mapping[str, str] | None = None
) -> Path:
    """Write the CLI configuration into `local_dir` and return its path.

    `mirror` defaults to :func:`find_provider_mirror`.
    """
    if mirror is None:
        mirror = find_provider_mirror(env)
    local_dir.mkdir(parents=True, exist_ok=True)
    path = local_dir / CLI_CONFIG_NAME
    text = render_cli_config(mirror)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def state_dir(target: str, local_dir: Path = LOCAL_DIR) -> Path:
    """Directory with the Terraform state and data dir of one target (moto, localstack, aws).

    One directory per target, so that a moto run never touches the state of real AWS.
    """
    return local_dir / "terraform" / target


def terraform_binary() -> str:
    """Return the terraform executable, or raise a clear error."""
    found = shutil.which("terraform")
    if found is None:
        raise TerraformError(
            "terraform is not on PATH; install Terraform >= 1.5 "
            "(https://developer.hashicorp.com/terraform/install)"
        )
    return found


def terraform_env(
    data_dir: Path | None = None,
    base: Mapping[str, str] | None = None,
    local_dir: Path = LOCAL_DIR,
) -> dict[str, str]:
    """Return the environment for a terraform subprocess (CLI config, no prompts, data dir).

    `base` is the whole starting environment (default: this process's).
    """
    env = dict(os.environ if base is None else base)
    env["TF_CLI_CONFIG_FILE"] = str(write_cli_config(local_dir).resolve())
    env["TF_IN_AUTOMATION"] = "1"
    env["TF_INPUT"] = "0"
    if data_dir is not None:
        # Absolute: terraform resolves a relative TF_DATA_DIR against -chdir, not the caller.
        env["TF_DATA_DIR"] = str(data_dir.resolve())
    return env


def run_terraform(
    args: Sequence[str],
    *,
    data_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    capture: bool = False,
    check: bool = True,
    chdir: Path = TERRAFORM_DIR,
    local_dir: Path = LOCAL_DIR,
) -> subprocess.CompletedProcess[str]:
    """Run `terraform -chdir=<chdir> <args>` with the offline CLI configuration.

    `env` is the whole base environment (default: this process's). Output streams to the
    terminal unless `capture`; a non-zero exit raises TerraformError when `check` (stderr
    included when captured).
    """
    command = [terraform_binary(), f"-chdir={chdir}", *args]
    result = subprocess.run(
        command,
        env=terraform_env(data_dir, env, local_dir),
        text=True,
        capture_output=capture,
        check=False,
    )
    if check and result.returncode != 0:
        detail = f"\n{result.stderr.strip()}" if capture and result.stderr else ""
        raise TerraformError(
            f"terraform {' '.join(args[:1])} failed (exit {result.returncode}){detail}"
        )
    return result


def validate(local_dir: Path = LOCAL_DIR) -> None:
    """`terraform init -backend=false` + `terraform validate`, in a data dir of their own."""
    data_dir = local_dir / "terraform" / "validate"
    run_terraform(
        ["init", "-backend=false", "-input=false", "-no-color"],
        data_dir=data_dir,
        capture=True,
        local_dir=local_dir,
    )
    run_terraform(["validate", "-no-color"], data_dir=data_dir, local_dir=local_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m deployment.terraform_cli", description=__doc__)
    parser.add_argument("command", choices=["config", "validate"])
    args = parser.parse_args(argv)
    try:
        if args.command == "config":
            print(write_cli_config())
        else:
            validate()
    except TerraformError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
