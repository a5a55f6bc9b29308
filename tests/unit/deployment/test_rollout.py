"""Model rollout and rollback (deployment/rollout.py) against moto's Lambda and S3 in-process."""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from deployment.rollout import (
    BUNDLE_ENV,
    PACKAGE_ENV,
    RolloutError,
    ServedRecord,
    Target,
    Wait,
    follow_code,
    rollback,
    rollback_target,
    rollout,
    served,
)
from lambda_function.compiled import platform_tag, predictor_file_name
from lambda_function.model import BUNDLE_METADATA_FILE, COMPILED_KEY, ModelBundle, file_entry

FUNCTION = "mushroom-scorer"
BUCKET = "mushroom-local-models"
TARGET = Target(function_name=FUNCTION, models_bucket=BUCKET)
# The default package: no LightGBM, scores with the bundle's compiled predictor.
OTHER_ENV = {
    "OUTPUT_STREAM_NAME": "mushroom-verdicts",
    "LOG_LEVEL": "INFO",
    PACKAGE_ENV: "compiled",
}
LIBRARY = predictor_file_name("linux-x86_64")
MODEL_1_KEYS = [
    f"mushroom-classifier/1/{name}" for name in sorted(["bundle.json", "model.txt", LIBRARY])
]


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lambda_function/handler.py", "def lambda_handler(e, c):\n    return {}\n")
    return buffer.getvalue()


@dataclass
class Stack:
    lam: Any
    s3: Any
    bundles: dict[str, Path]

    def roll_out(self, version: str, **kwargs: Any) -> Any:
        return rollout(
            self.bundles[version],
            version,
            None,
            target=TARGET,
            lambda_client=self.lam,
            s3_client=self.s3,
            **kwargs,
        )

    def roll_back(self) -> Any:
        return rollback(target=TARGET, lambda_client=self.lam, s3_client=self.s3)

    def alias(self) -> dict[str, Any]:
        return self.lam.get_alias(FunctionName=FUNCTION, Name="live")

    def latest_env(self) -> dict[str, str]:
        config = self.lam.get_function_configuration(FunctionName=FUNCTION)
        return config["Environment"]["Variables"]

    def versions(self) -> list[str]:
        listed = self.lam.list_versions_by_function(FunctionName=FUNCTION)["Versions"]
        return [v["Version"] for v in listed if v["Version"] != "$LATEST"]

    def keys(self) -> list[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def _bundle_copy(source: Path, directory: Path, version: str) -> Path:
    bundle = ModelBundle.load(source)
    bundle.model_version = version
    bundle.metadata["mlflow_run_id"] = f"run-{version}"
    return bundle.save(directory)


@pytest.fixture
def stack(moto_aws: None, tiny_compiled_bundle: Path, tmp_path: Path) -> Stack:
    """What the first `terraform apply` leaves: function (version 1 serving model 1), alias."""
    iam = boto3.client("iam")
    role = iam.create_role(
        RoleName="scorer",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    lam = boto3.client("lambda")
    lam.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=role,
        Handler="lambda_function.handler.lambda_handler",
        Code={"ZipFile": _zip()},
        Environment={"Variables": {**OTHER_ENV, BUNDLE_ENV: TARGET.bundle_uri("1")}},
        Publish=True,
    )
    lam.create_alias(
        FunctionName=FUNCTION, Name="live", FunctionVersion="1", Description="set by rollout"
    )
    bundles = {
        version: _bundle_copy(tiny_compiled_bundle, tmp_path / f"bundle-{version}", version)
        for version in ("1", "2", "3")
    }
    # Model 1's bundle is in S3, as the model the function was created with would be.
    for path in sorted(bundles["1"].iterdir()):
        s3.put_object(
            Bucket=BUCKET, Key=f"mushroom-classifier/1/{path.name}", Body=path.read_bytes()
        )
    return Stack(lam, s3, bundles)


def test_rollout_uploads_publishes_and_moves_the_alias(stack: Stack) -> None:
    result = stack.roll_out("2")

    assert result.changed
    assert result.served.function_version == "2" and result.served.model_version == "2"
    assert result.served.run_id == "run-2" and result.served.previous_version == "1"
    assert sorted(stack.keys()) == [
        *MODEL_1_KEYS,
        "mushroom-classifier/2/bundle.json",
        "mushroom-classifier/2/model.txt",
        f"mushroom-classifier/2/{LIBRARY}",
    ]
    uploaded = stack.s3.get_object(Bucket=BUCKET, Key="mushroom-classifier/2/bundle.json")
    assert uploaded["Body"].read() == (stack.bundles["2"] / "bundle.json").read_bytes()
    assert stack.latest_env() == {**OTHER_ENV, BUNDLE_ENV: f"s3://{BUCKET}/mushroom-classifier/2/"}
    version = stack.lam.get_function_configuration(FunctionName=FUNCTION, Qualifier="2")
    assert version["Environment"]["Variables"][BUNDLE_ENV].endswith("/mushroom-classifier/2/")
    assert version["Description"] == "model_version=2 run_id=run-2 previous_version=1"
    alias = stack.alias()
    assert alias["FunctionVersion"] == "2"
    assert ServedRecord.parse(alias["Description"]) == ServedRecord("2", "run-2", "1")
    assert served(target=TARGET, lambda_client=stack.lam) == result.served


def test_rolling_out_the_served_version_again_is_a_no_op_that_says_so(stack: Stack) -> None:
    stack.roll_out("2")
    again = stack.roll_out("2")

    assert not again.changed
    assert "already served" in again.message and "nothing changed" in again.message
    assert stack.versions() == ["1", "2"] and stack.alias()["FunctionVersion"] == "2"


def test_the_version_terraform_created_is_already_served(stack: Stack) -> None:
    result = stack.roll_out("1")
    assert not result.changed and result.served.model_version == "1"
    assert stack.versions() == ["1"]


def test_new_code_on_latest_is_published_even_for_the_served_model(stack: Stack) -> None:
    stack.roll_out("2")
    stack.lam.update_function_configuration(FunctionName=FUNCTION, MemorySize=2048)
    result = stack.roll_out("2")
    assert result.changed and result.served.function_version == "3"
    config = stack.lam.get_function_configuration(FunctionName=FUNCTION, Qualifier="live")
    assert config["MemorySize"] == 2048


def test_rollback_returns_to_the_version_served_before_and_walks_back(stack: Stack) -> None:
    stack.roll_out("2")
    stack.roll_out("3")
    keys = stack.keys()

    back = stack.roll_back()
    assert back.changed and back.served.function_version == "2"
    assert back.served.model_version == "2" and back.served.previous_version == "1"
    assert "from version 3 (model 3) to version 2 (model 2)" in back.message
    config = stack.lam.get_function_configuration(FunctionName=FUNCTION, Qualifier="live")
    assert config["Environment"]["Variables"][BUNDLE_ENV].endswith("/mushroom-classifier/2/")
    assert stack.keys() == keys and stack.versions() == ["1", "2", "3"]  # no upload, no publish

    assert stack.roll_back().served.function_version == "1"
    with pytest.raises(RolloutError, match="nothing to roll back to: .*records no version"):
        stack.roll_back()
    assert stack.alias()["FunctionVersion"] == "1"


def test_roll_forward_after_a_rollback_serves_the_new_model_again(stack: Stack) -> None:
    stack.roll_out("2")
    stack.roll_back()
    forward = stack.roll_out("2")
    assert forward.changed and forward.served.model_version == "2"
    config = stack.lam.get_function_configuration(FunctionName=FUNCTION, Qualifier="live")
    assert config["Environment"]["Variables"][BUNDLE_ENV].endswith("/mushroom-classifier/2/")
    # And rolling back once more lands on model 1 again, not on a loop.
    assert stack.roll_back().served.model_version == "1"


def test_follow_code_serves_new_code_with_the_model_served_now(stack: Stack) -> None:
    stack.roll_out("2")
    stack.roll_back()  # $LATEST still names model 2
    assert not follow_code(target=TARGET, lambda_client=stack.lam).changed
    stack.lam.update_function_configuration(FunctionName=FUNCTION, MemorySize=2048)  # an apply

    result = follow_code(target=TARGET, lambda_client=stack.lam)

    assert result.changed and result.served.function_version == "3"
    assert result.served.model_version == "1" and result.served.previous_version == "1"
    config = stack.lam.get_function_configuration(FunctionName=FUNCTION, Qualifier="live")
    assert config["MemorySize"] == 2048
    assert config["Environment"]["Variables"][BUNDLE_ENV].endswith("/mushroom-classifier/1/")
    assert stack.roll_back().served.function_version == "1"


def test_rollback_refuses_a_previous_version_without_a_model(stack: Stack) -> None:
    env = {**OTHER_ENV, BUNDLE_ENV: ""}
    stack.lam.update_function_configuration(FunctionName=FUNCTION, Environment={"Variables": env})
    stack.lam.publish_version(FunctionName=FUNCTION)  # version 2, no model
    stack.lam.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="2")
    stack.roll_out("3")  # version 3, previous_version=2
    with pytest.raises(RolloutError, match="version 2 .* serves no model.*make rollout"):
        stack.roll_back()
    assert stack.alias()["FunctionVersion"] == "3"


def _unchanged(stack: Stack) -> None:
    assert stack.keys() == MODEL_1_KEYS
    assert stack.latest_env()[BUNDLE_ENV].endswith("/mushroom-classifier/1/")
    assert stack.versions() == ["1"] and stack.alias()["FunctionVersion"] == "1"


def test_a_corrupt_bundle_changes_nothing(stack: Stack) -> None:
    model = stack.bundles["2"] / "model.txt"
    model.write_bytes(model.read_bytes().replace(b"tree", b"TREE", 1))
    with pytest.raises(RolloutError, match="fails verification: .*corrupt.*nothing changed"):
        stack.roll_out("2")
    _unchanged(stack)


def test_a_bundle_of_another_version_changes_nothing(stack: Stack) -> None:
    with pytest.raises(RolloutError, match="holds model version 3, not 2"):
        rollout(
            stack.bundles["3"],
            "2",
            None,
            target=TARGET,
            lambda_client=stack.lam,
            s3_client=stack.s3,
        )
    _unchanged(stack)


def test_no_function_or_no_alias_is_a_clear_error_before_any_upload(stack: Stack) -> None:
    missing = Target(function_name="no-such-function", models_bucket=BUCKET)
    with pytest.raises(RolloutError, match="function no-such-function does not exist"):
        rollout(
            stack.bundles["2"],
            "2",
            None,
            target=missing,
            lambda_client=stack.lam,
            s3_client=stack.s3,
        )
    with pytest.raises(RolloutError, match="does not exist"):
        rollback(target=missing, lambda_client=stack.lam, s3_client=stack.s3)
    stack.lam.delete_alias(FunctionName=FUNCTION, Name="live")
    with pytest.raises(RolloutError, match=f"function {FUNCTION} has no alias live"):
        stack.roll_out("2")
    with pytest.raises(RolloutError, match="has no alias live"):
        stack.roll_back()
    assert stack.keys() == MODEL_1_KEYS and stack.versions() == ["1"]


def test_a_different_bundle_under_the_version_prefix_is_never_overwritten(stack: Stack) -> None:
    stack.s3.put_object(Bucket=BUCKET, Key="mushroom-classifier/2/bundle.json", Body=b"{}")
    with pytest.raises(RolloutError, match="already holds a different bundle"):
        stack.roll_out("2")
    assert stack.keys() == [*MODEL_1_KEYS, "mushroom-classifier/2/bundle.json"]
    assert stack.alias()["FunctionVersion"] == "1" and stack.versions() == ["1"]


class _UpdateStatus:
    """The Lambda client, with $LATEST's LastUpdateStatus after an update forced to ``status``."""

    def __init__(self, client: Any, status: str) -> None:
        self._client, self._status, self.updated = client, status, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_function_configuration(self, **kwargs: Any) -> Any:
        self.updated = True
        return self._client.update_function_configuration(**kwargs)

    def get_function_configuration(self, **kwargs: Any) -> Any:
        config = self._client.get_function_configuration(**kwargs)
        if self.updated and "Qualifier" not in kwargs:
            config.update(LastUpdateStatus=self._status, LastUpdateStatusReason="no space left")
            config["LastUpdateStatusReasonCode"] = "EniLimitExceeded"
        return config


def test_a_failed_update_publishes_nothing_and_leaves_the_alias(stack: Stack) -> None:
    client = _UpdateStatus(stack.lam, "Failed")
    with pytest.raises(
        RolloutError, match="update of .* failed .*no space left.*alias is unchanged"
    ):
        rollout(
            stack.bundles["2"], "2", None, target=TARGET, lambda_client=client, s3_client=stack.s3
        )
    assert stack.versions() == ["1"] and stack.alias()["FunctionVersion"] == "1"


def test_an_update_that_never_finishes_times_out(stack: Stack) -> None:
    client = _UpdateStatus(stack.lam, "InProgress")
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(RolloutError, match="still InProgress after 10 s; nothing published"):
        rollout(
            stack.bundles["2"],
            "2",
            None,
            target=TARGET,
            lambda_client=client,
            s3_client=stack.s3,
            wait=Wait(timeout_s=10, poll_s=2, sleep=sleep, clock=lambda: now[0]),
        )
    assert now[0] == 10
    assert stack.versions() == ["1"] and stack.alias()["FunctionVersion"] == "1"


def test_the_run_id_given_must_be_the_bundles(stack: Stack) -> None:
    with pytest.raises(RolloutError, match="trained by run run-2, not run-9"):
        rollout(
            stack.bundles["2"],
            "2",
            "run-9",
            target=TARGET,
            lambda_client=stack.lam,
            s3_client=stack.s3,
        )
    _unchanged(stack)


def test_served_record_round_trip() -> None:
    record = ServedRecord("12", "0123abcd", None)
    assert record.describe() == "model_version=12 run_id=0123abcd previous_version=none"
    assert ServedRecord.parse(record.describe()) == record
    assert ServedRecord.parse("Served model: set by deployment/rollout.py") is None


# --- the package must be able to serve the bundle ------------------------------------------


def _nothing_changed(stack: Stack) -> None:
    assert stack.alias()["FunctionVersion"] == "1" and stack.versions() == ["1"]
    assert stack.latest_env()[BUNDLE_ENV] == TARGET.bundle_uri("1")
    assert stack.keys() == MODEL_1_KEYS


def _set_package(stack: Stack, package: str | None) -> None:
    env = {k: v for k, v in stack.latest_env().items() if k != PACKAGE_ENV}
    env.update({PACKAGE_ENV: package} if package else {})
    stack.lam.update_function_configuration(FunctionName=FUNCTION, Environment={"Variables": env})
    stack.lam.publish_version(FunctionName=FUNCTION)  # as terraform apply does
    stack.lam.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="1")


def test_a_bundle_without_a_compiled_predictor_for_the_lambda_is_refused(
    stack: Stack, tiny_bundle: Path, tmp_path: Path
) -> None:
    stack.bundles["4"] = _bundle_copy(tiny_bundle, tmp_path / "bundle-4", "4")
    with pytest.raises(RolloutError) as caught:
        stack.roll_out("4")
    message = str(caught.value)
    assert "has no compiled predictor for linux-x86_64 (it has: none)" in message
    assert "package has no LightGBM (SCORER_PACKAGE=compiled)" in message
    assert "--flavour lightgbm" in message and message.endswith("nothing changed")
    _nothing_changed(stack)


def test_a_bundle_compiled_on_another_platform_is_refused_and_named(stack: Stack) -> None:
    path = stack.bundles["2"] / BUNDLE_METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata[COMPILED_KEY] = {"darwin-arm64": metadata[COMPILED_KEY].pop(platform_tag())}
    path.write_text(json.dumps(metadata))
    with pytest.raises(RolloutError, match=r"for linux-x86_64 \(it has: darwin-arm64\)"):
        stack.roll_out("2")
    _nothing_changed(stack)


def test_without_the_package_variable_the_rollout_fails_closed(
    stack: Stack, tiny_bundle: Path, tmp_path: Path
) -> None:
    _set_package(stack, None)
    stack.bundles["4"] = _bundle_copy(tiny_bundle, tmp_path / "bundle-4", "4")
    with pytest.raises(RolloutError, match="package has no LightGBM \\(no SCORER_PACKAGE\\)"):
        stack.roll_out("4")


def test_a_package_with_lightgbm_serves_a_bundle_without_a_compiled_predictor(
    stack: Stack, tiny_bundle: Path, tmp_path: Path
) -> None:
    _set_package(stack, "lightgbm")
    stack.bundles["4"] = _bundle_copy(tiny_bundle, tmp_path / "bundle-4", "4")
    result = stack.roll_out("4")
    assert result.changed and result.served.model_version == "4"


def test_a_compiled_predictor_of_another_abi_is_refused(stack: Stack) -> None:
    """A bundle exported before the hardened library (ABI 1) would fail the cold start of a
    package without LightGBM: refused before anything changes."""
    path = stack.bundles["2"] / BUNDLE_METADATA_FILE
    metadata = json.loads(path.read_text())
    for entry in metadata[COMPILED_KEY].values():
        entry["abi"] = 1
    path.write_text(json.dumps(metadata))
    with pytest.raises(RolloutError, match="implements predictor ABI 1, and .* reads 2"):
        stack.roll_out("2")
    _nothing_changed(stack)


def test_a_compiled_predictor_needing_a_newer_glibc_than_the_runtime_is_refused(
    stack: Stack,
) -> None:
    directory = stack.bundles["2"]
    data = (directory / LIBRARY).read_bytes()
    # Compared as numbers: GLIBC_2.4 (the stack protector's) is older than GLIBC_2.29.
    newest = max(re.findall(rb"GLIBC_2\.[0-9]+", data), key=lambda v: int(v.split(b".")[1]))
    data = data.replace(newest, b"GLIBC_2." + b"9" * (len(newest) - len(b"GLIBC_2.")))
    (directory / LIBRARY).write_bytes(data)
    path = directory / BUNDLE_METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata["files"][LIBRARY] = file_entry(data)
    path.write_text(json.dumps(metadata))
    with pytest.raises(RolloutError, match="would not load on the python3.12 runtime"):
        stack.roll_out("2")
    _nothing_changed(stack)


# --- the S3 copy is verified before it is said to be served ---------------------------------


def _delete(stack: Stack, version: str, *names: str) -> None:
    for key in stack.keys():
        if key.startswith(f"mushroom-classifier/{version}/") and (
            not names or key.rsplit("/", 1)[-1] in names
        ):
            stack.s3.delete_object(Bucket=BUCKET, Key=key)


def _copy_is_the_bundle(stack: Stack, version: str) -> None:
    for path in stack.bundles[version].iterdir():
        key = f"mushroom-classifier/{version}/{path.name}"
        assert stack.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == path.read_bytes()


def test_files_deleted_from_the_served_copy_are_uploaded_again_and_said_so(stack: Stack) -> None:
    stack.roll_out("3")
    _delete(stack, "3", "model.txt", LIBRARY)  # bundle.json kept

    again = stack.roll_out("3")

    assert not again.changed and again.copy is not None and again.copy.state == "repaired"
    assert "already served" in again.message and "nothing changed" not in again.message
    assert f"was damaged (model.txt missing; {LIBRARY} missing): re-uploaded" in again.message
    assert "the function and the alias are unchanged" in again.message
    _copy_is_the_bundle(stack, "3")
    assert stack.versions() == ["1", "2"] and stack.alias()["FunctionVersion"] == "2"


def test_rolling_forward_onto_a_damaged_copy_repairs_it_first(stack: Stack) -> None:
    stack.roll_out("2")
    stack.roll_out("3")
    stack.roll_back()  # live back on model 2; model 3's copy then loses its model file
    model = f"mushroom-classifier/3/{'model.txt'}"
    stack.s3.put_object(Bucket=BUCKET, Key=model, Body=b"tree\n")  # damaged, not missing

    forward = stack.roll_out("3")

    assert forward.changed and forward.served.model_version == "3"
    assert "now serves model version 3" in forward.message
    assert (
        "model.txt is corrupt or truncated" in forward.message and "re-uploaded" in forward.message
    )
    _copy_is_the_bundle(stack, "3")


def test_a_whole_prefix_deleted_is_uploaded_and_the_message_says_so(stack: Stack) -> None:
    stack.roll_out("3")
    _delete(stack, "3")

    again = stack.roll_out("3")

    assert not again.changed and again.copy is not None and again.copy.state == "uploaded"
    assert "was not in S3: uploaded to s3://" in again.message
    assert "nothing changed" not in again.message
    _copy_is_the_bundle(stack, "3")


def test_an_intact_copy_is_verified_file_by_file(stack: Stack) -> None:
    stack.roll_out("3")
    again = stack.roll_out("3")
    assert again.copy is not None and again.copy.state == "verified" and again.copy.files == 3
    assert "verifies (3 files, size and SHA-256); nothing changed" in again.message


class _LossyPut:
    """An S3 client that stores every model.txt truncated (a copy that never verifies)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_object(self, **kwargs: Any) -> Any:
        if kwargs["Key"].endswith("/model.txt"):
            kwargs = {**kwargs, "Body": kwargs["Body"][:10]}
        return self._client.put_object(**kwargs)


def test_a_copy_that_does_not_verify_after_the_upload_stops_the_rollout(stack: Stack) -> None:
    with pytest.raises(
        RolloutError, match="does not verify after the upload .*model.txt is corrupt"
    ):
        rollout(
            stack.bundles["2"],
            "2",
            None,
            target=TARGET,
            lambda_client=stack.lam,
            s3_client=_LossyPut(stack.s3),
        )
    assert stack.alias()["FunctionVersion"] == "1" and stack.versions() == ["1"]
    assert stack.latest_env()[BUNDLE_ENV] == TARGET.bundle_uri("1")


@pytest.mark.parametrize("names", [("model.txt",), ()], ids=["model file", "whole prefix"])
def test_rollback_refuses_a_target_whose_copy_no_longer_verifies(
    stack: Stack, names: tuple[str, ...]
) -> None:
    stack.roll_out("2")
    stack.roll_out("3")
    _delete(stack, "2", *names)
    with pytest.raises(RolloutError) as caught:
        stack.roll_back()
    message = str(caught.value)
    assert "refusing to roll back to version 2" in message and "no longer verifies" in message
    assert ("model.txt missing" if names else "bundle.json missing") in message
    assert "nothing changed" in message and "make rollout MODEL_VERSION=2" in message
    with pytest.raises(RolloutError, match="no longer verifies"):
        rollback_target(target=TARGET, lambda_client=stack.lam, s3_client=stack.s3)
    assert stack.alias()["FunctionVersion"] == "3"

    stack.roll_out("2")  # the fix the message names: the copy is whole again
    _copy_is_the_bundle(stack, "2")


def test_rollback_target_says_what_a_rollback_would_serve(stack: Stack) -> None:
    with pytest.raises(RolloutError, match="nothing to roll back to"):
        rollback_target(target=TARGET, lambda_client=stack.lam, s3_client=stack.s3)
    stack.roll_out("2")
    would = rollback_target(target=TARGET, lambda_client=stack.lam, s3_client=stack.s3)
    assert would.function_version == "1" and would.model_version == "1"
    assert stack.alias()["FunctionVersion"] == "2"  # only said, not done


def test_the_status_says_what_make_rollback_would_do(stack: Stack) -> None:
    from orchestration.rollout import Stack as Deployed  # noqa: PLC0415
    from orchestration.rollout import can_roll_back, rollback_status  # noqa: PLC0415

    deployed = Deployed(None, TARGET, stack.lam, stack.s3)  # type: ignore[arg-type]
    assert not can_roll_back(deployed)
    assert rollback_status(deployed).startswith("make rollback: refused (nothing to roll back")
    stack.roll_out("2")
    assert can_roll_back(deployed)
    assert rollback_status(deployed) == (
        "make rollback: to Lambda version 1 (model version 1, its S3 copy verifies)"
    )
    _delete(stack, "1", "model.txt")
    assert not can_roll_back(deployed)
    assert "make rollout MODEL_VERSION=1" in rollback_status(deployed)
