"""Offline Terraform CLI configuration and the pure parts of deployment.deploy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.stack_env import read_stack_env, update_stack_env
from deployment import deploy
from deployment.terraform_cli import (
    CLI_CONFIG_NAME,
    TerraformError,
    find_provider_mirror,
    render_cli_config,
    state_dir,
    terraform_env,
    write_cli_config,
)


def make_mirror(root: Path) -> Path:
    """A filesystem mirror layout as `terraform providers mirror` writes it."""
    (root / "registry.terraform.io" / "hashicorp" / "aws" / "5.100.0" / "linux_amd64").mkdir(
        parents=True
    )
    return root


def test_mirror_from_variable_accepts_root_or_registry_dir(tmp_path: Path) -> None:
    root = make_mirror(tmp_path / "plugins")
    assert find_provider_mirror({"TF_PROVIDER_MIRROR": str(root)}, candidates=()) == root
    registry = root / "registry.terraform.io"
    assert find_provider_mirror({"TF_PROVIDER_MIRROR": str(registry)}, candidates=()) == root


def test_mirror_variable_without_a_mirror_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TerraformError, match="TF_PROVIDER_MIRROR=.*registry.terraform.io"):
        find_provider_mirror({"TF_PROVIDER_MIRROR": str(tmp_path)}, candidates=())


def test_mirror_found_a_few_levels_below_a_candidate(tmp_path: Path) -> None:
    root = make_mirror(tmp_path / "image" / "tf")
    assert find_provider_mirror({}, candidates=[tmp_path / "missing", tmp_path]) == root


def test_no_mirror_means_registry(tmp_path: Path) -> None:
    assert find_provider_mirror({}, candidates=[tmp_path]) is None
    text = render_cli_config(None)
    assert "provider_installation" not in text


def test_cli_config_uses_mirror_for_aws_and_registry_for_the_rest(tmp_path: Path) -> None:
    root = make_mirror(tmp_path / "plugins")
    path = write_cli_config(tmp_path / "local", mirror=root)
    text = path.read_text()
    assert path == tmp_path / "local" / CLI_CONFIG_NAME
    assert f'path    = "{root}"' in text
    assert 'include = ["registry.terraform.io/hashicorp/aws"]' in text
    assert 'exclude = ["registry.terraform.io/hashicorp/aws"]' in text
    assert text.index("filesystem_mirror {") < text.index("direct {")


def test_cli_config_rewritten_only_when_it_changes(tmp_path: Path) -> None:
    root = make_mirror(tmp_path / "plugins")
    path = write_cli_config(tmp_path, mirror=root)
    path.touch()
    before = path.stat().st_mtime_ns
    write_cli_config(tmp_path, mirror=root)
    assert path.stat().st_mtime_ns == before


def test_terraform_env_points_at_config_and_data_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TF_PROVIDER_MIRROR", str(make_mirror(tmp_path / "plugins")))
    env = terraform_env(tmp_path / "data", base={"PATH": "/bin"}, local_dir=tmp_path)
    assert env["TF_CLI_CONFIG_FILE"] == str(tmp_path / CLI_CONFIG_NAME)
    assert env["TF_DATA_DIR"] == str(tmp_path / "data")
    assert env["TF_INPUT"] == "0"
    assert env["PATH"] == "/bin"


def test_each_target_has_its_own_state_dir(tmp_path: Path) -> None:
    dirs = {state_dir(target, tmp_path) for target in deploy.TARGETS}
    assert len(dirs) == len(deploy.TARGETS)


# ---------------------------------------------------------------------------------------------
# deployment.deploy helpers
# ---------------------------------------------------------------------------------------------


def test_target_defaults_to_env_then_moto(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AWS_TARGET", raising=False)
    assert deploy.resolve_target(None, tmp_path) == "moto"
    monkeypatch.setenv("AWS_TARGET", "aws")
    assert deploy.resolve_target(None, tmp_path) == "aws"
    assert deploy.resolve_target("localstack", tmp_path) == "localstack"
    with pytest.raises(deploy.DeployError, match="unknown target"):
        deploy.resolve_target("gcp", tmp_path)


def test_emulator_target_without_endpoint_says_make_up(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with pytest.raises(deploy.DeployError, match="make up"):
        deploy.endpoint_for("moto", tmp_path)
    assert deploy.endpoint_for("aws", tmp_path) is None


def test_endpoint_of_another_running_emulator_is_refused(tmp_path: Path) -> None:
    (tmp_path / "emulator.json").write_text(
        json.dumps({"target": "moto", "endpoint": "http://127.0.0.1:5000", "pid": 1, "port": 5000})
    )
    assert deploy.endpoint_for("moto", tmp_path) == "http://127.0.0.1:5000"
    with pytest.raises(deploy.DeployError, match="moto is running"):
        deploy.endpoint_for("localstack", tmp_path)


def test_aws_target_drops_emulator_endpoint_and_dummy_keys(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    env = deploy._subprocess_env("aws", None)
    assert "AWS_ENDPOINT_URL" not in env
    assert "AWS_ACCESS_KEY_ID" not in env
    emulated = deploy._subprocess_env("moto", "http://127.0.0.1:5000")
    assert emulated["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"


def test_var_files_per_target() -> None:
    assert deploy.var_file("aws").name == "aws.tfvars"
    assert deploy.var_file("moto").name == "local.tfvars"
    assert deploy.var_file("moto").exists() and deploy.var_file("aws").exists()


def test_outputs_go_to_stack_env_next_to_emulator_lines(tmp_path: Path) -> None:
    env_path = tmp_path / "stack.env"
    update_stack_env(env_path, {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"})
    deploy.write_outputs_env(
        {"function_name": "mushroom-scorer", "old_output": "x", "alarm_names": {"a": "b"}},
        "moto",
        tmp_path,
    )
    deploy.write_outputs_env(
        {"function_name": "mushroom-scorer", "batch_size": 500}, "moto", tmp_path
    )
    values = read_stack_env(env_path)
    assert values == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "FUNCTION_NAME": "mushroom-scorer",
        "BATCH_SIZE": "500",
    }
    saved = json.loads((state_dir("moto", tmp_path) / deploy.OUTPUTS_NAME).read_text())
    assert saved["batch_size"] == 500


def test_a_remembered_zip_that_was_rebuilt_away_is_built_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    tf = deploy._Terraform("moto", tmp_path)
    tf.dir.mkdir(parents=True)
    tf.saved_vars_path.write_text(json.dumps({"lambda_zip_path": str(tmp_path / "old.zip")}))
    rebuilt = tmp_path / "new.zip"
    rebuilt.write_bytes(b"zip")
    monkeypatch.setattr(deploy, "_default_lambda_zip", lambda target: str(rebuilt))

    tf.write_vars({"model_version": "3"})

    saved = json.loads(tf.saved_vars_path.read_text())
    assert saved["lambda_zip_path"] == str(rebuilt)
    assert saved["model_version"] == "3"


def test_an_explicit_zip_that_does_not_exist_is_an_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    tf = deploy._Terraform("moto", tmp_path)
    with pytest.raises(deploy.DeployError, match="does not exist"):
        tf.write_vars({"lambda_zip_path": str(tmp_path / "missing.zip")})


def test_localstack_leaves_out_ecr_and_the_query_catalog_unless_told(
    tmp_path: Path, monkeypatch
) -> None:
    """LocalStack Community has no ECR, Glue or Athena; an explicit choice is kept."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:4566")
    tf = deploy._Terraform("localstack", tmp_path)
    tf.write_vars({}, need_package=False)
    saved = json.loads(tf.saved_vars_path.read_text())
    assert saved["create_ecr_repository"] is False
    assert saved["archive_query_catalog_enabled"] is False
    tf.write_vars({"archive_query_catalog_enabled": True}, need_package=False)
    assert json.loads(tf.saved_vars_path.read_text())["archive_query_catalog_enabled"] is True
    moto = deploy._Terraform("moto", tmp_path)
    moto.write_vars({}, need_package=False)
    assert "archive_query_catalog_enabled" not in json.loads(moto.saved_vars_path.read_text())
