"""Shadow deployment (deployment/shadow.py) against moto's Lambda and S3 in-process.

The stack is test_rollout's: version 1 of the function serves model 1 through the alias live.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deployment.rollout import (
    BUNDLE_ENV,
    SHADOW_ENV,
    RolloutError,
    ServedRecord,
    follow_code,
    rollback,
    served,
)
from deployment.shadow import current_shadow, promote_shadow, start_shadow, stop_shadow
from tests.unit.deployment import test_rollout
from tests.unit.deployment.test_rollout import (
    BUCKET,
    FUNCTION,
    LIBRARY,
    MODEL_1_KEYS,
    TARGET,
    Stack,
)


@pytest.fixture
def stack(moto_aws: None, tiny_compiled_bundle: Path, tmp_path: Path) -> Stack:
    """test_rollout's stack: version 1 of the function serves model 1 through the alias."""
    return test_rollout.stack.__wrapped__(moto_aws, tiny_compiled_bundle, tmp_path)


def _start(stack: Stack, version: str, client: Any = None) -> Any:
    return start_shadow(
        stack.bundles[version],
        version,
        None,
        target=TARGET,
        lambda_client=client or stack.lam,
        s3_client=stack.s3,
    )


def _promote(stack: Stack) -> Any:
    return promote_shadow(target=TARGET, lambda_client=stack.lam, s3_client=stack.s3)


def _stop(stack: Stack) -> Any:
    return stop_shadow(target=TARGET, lambda_client=stack.lam, s3_client=stack.s3)


def _live(stack: Stack) -> dict[str, str]:
    config = stack.lam.get_function_configuration(FunctionName=FUNCTION, Qualifier="live")
    return config["Environment"]["Variables"]


def test_start_keeps_the_served_model_and_adds_the_shadow(stack: Stack) -> None:
    result = _start(stack, "2")

    assert result.changed and result.served.function_version == "2"
    assert result.served.model_version == "1" and result.served.previous_version == "1"
    assert result.served.shadow_model_version == "2"
    assert result.served.shadow_bundle_uri == TARGET.bundle_uri("2")
    assert "scores model version 2 as the shadow of model version 1" in result.message
    assert _live(stack)[BUNDLE_ENV] == TARGET.bundle_uri("1")
    assert _live(stack)[SHADOW_ENV] == TARGET.bundle_uri("2")
    assert sorted(stack.keys()) == sorted(
        [*MODEL_1_KEYS, *(f"mushroom-classifier/2/{n}" for n in ("bundle.json", "model.txt"))]
        + [f"mushroom-classifier/2/{LIBRARY}"]
    )
    alias = stack.alias()
    assert alias["FunctionVersion"] == "2"
    assert ServedRecord.parse(alias["Description"]) == ServedRecord("1", "unknown", "1", "2")
    state = current_shadow(target=TARGET, lambda_client=stack.lam)
    assert state is not None and (state.model_version, state.served_model_version) == ("2", "1")
    assert served(target=TARGET, lambda_client=stack.lam) == result.served

    again = _start(stack, "2")
    assert not again.changed and "already the shadow" in again.message
    assert stack.versions() == ["1", "2"]


def test_a_new_shadow_replaces_the_old_one(stack: Stack) -> None:
    _start(stack, "2")
    result = _start(stack, "3")
    assert result.served.shadow_model_version == "3" and result.served.model_version == "1"
    assert _live(stack)[SHADOW_ENV] == TARGET.bundle_uri("3")


def test_promote_serves_the_shadow_without_a_shadow_and_rollback_returns(stack: Stack) -> None:
    _start(stack, "2")
    result = _promote(stack)

    assert result.changed and result.served.function_version == "3"
    assert result.served.model_version == "2" and result.served.run_id == "run-2"
    assert result.served.shadow_model_version is None and result.served.previous_version == "2"
    assert _live(stack)[BUNDLE_ENV] == TARGET.bundle_uri("2") and SHADOW_ENV not in _live(stack)
    assert SHADOW_ENV not in stack.latest_env()
    assert current_shadow(target=TARGET, lambda_client=stack.lam) is None
    assert "verifies (3 files" in result.message

    back = rollback(target=TARGET, lambda_client=stack.lam, s3_client=stack.s3)
    assert back.served.function_version == "2" and back.served.shadow_model_version == "2"
    assert back.message.endswith("; it scores model 2 as its shadow")
    assert _live(stack)[SHADOW_ENV] == TARGET.bundle_uri("2")
    back = rollback(target=TARGET, lambda_client=stack.lam, s3_client=stack.s3)
    assert back.served.function_version == "1" and back.served.shadow_model_version is None


def test_stop_drops_the_shadow_and_is_a_no_op_without_one(stack: Stack) -> None:
    nothing = _stop(stack)
    assert not nothing.changed and "has no shadow; nothing changed" in nothing.message
    _start(stack, "2")

    result = _stop(stack)

    assert result.changed and result.served.function_version == "3"
    assert result.served.model_version == "1" and result.served.shadow_model_version is None
    assert SHADOW_ENV not in _live(stack) and _live(stack)[BUNDLE_ENV] == TARGET.bundle_uri("1")
    assert stack.versions() == ["1", "2", "3"]


def test_rollback_after_start_goes_back_to_no_shadow_at_once(stack: Stack) -> None:
    _start(stack, "2")
    keys = stack.keys()
    back = rollback(target=TARGET, lambda_client=stack.lam, s3_client=stack.s3)
    assert back.served.function_version == "1" and SHADOW_ENV not in _live(stack)
    assert stack.keys() == keys and stack.versions() == ["1", "2"]


def test_a_rollout_drops_the_shadow_and_follow_code_keeps_it(stack: Stack) -> None:
    _start(stack, "2")
    stack.lam.update_function_configuration(FunctionName=FUNCTION, MemorySize=2048)  # an apply
    kept = follow_code(target=TARGET, lambda_client=stack.lam)
    assert kept.changed and kept.served.shadow_model_version == "2"
    assert _live(stack)[SHADOW_ENV] == TARGET.bundle_uri("2")

    result = stack.roll_out("3")
    assert result.served.model_version == "3" and result.served.shadow_model_version is None
    assert "the shadow (2) was dropped" in result.message
    assert SHADOW_ENV not in _live(stack) and SHADOW_ENV not in stack.latest_env()


def _nothing_changed(stack: Stack) -> None:
    assert stack.alias()["FunctionVersion"] == "1" and stack.versions() == ["1"]
    assert SHADOW_ENV not in stack.latest_env()


def test_start_refuses_the_served_version_and_a_bundle_that_fails_verification(
    stack: Stack,
) -> None:
    with pytest.raises(RolloutError, match="already serves model version 1: .*own shadow"):
        _start(stack, "1")
    model = stack.bundles["2"] / "model.txt"
    model.write_bytes(model.read_bytes().replace(b"tree", b"TREE", 1))
    with pytest.raises(RolloutError, match="fails verification: .*nothing changed"):
        _start(stack, "2")
    _nothing_changed(stack)
    assert stack.keys() == MODEL_1_KEYS


def test_start_refuses_without_a_served_model(stack: Stack) -> None:
    stack.lam.update_function_configuration(
        FunctionName=FUNCTION, Environment={"Variables": {BUNDLE_ENV: ""}}
    )
    stack.lam.publish_version(FunctionName=FUNCTION)
    stack.lam.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="2")
    with pytest.raises(RolloutError, match="serves no model yet.*make rollout first"):
        _start(stack, "3")


def test_promote_refuses_without_a_shadow_or_with_a_damaged_copy(stack: Stack) -> None:
    with pytest.raises(RolloutError, match="has no shadow to promote .*make shadow"):
        _promote(stack)
    _start(stack, "2")
    stack.s3.delete_object(Bucket=BUCKET, Key="mushroom-classifier/2/model.txt")
    with pytest.raises(RolloutError) as caught:
        _promote(stack)
    message = str(caught.value)
    assert "cannot promote the shadow" in message and "model.txt missing" in message
    assert "nothing changed" in message and "MODEL_VERSION=2" in message
    assert stack.alias()["FunctionVersion"] == "2" and stack.versions() == ["1", "2"]


def test_stop_refuses_when_the_served_copy_no_longer_verifies(stack: Stack) -> None:
    _start(stack, "2")
    stack.s3.put_object(Bucket=BUCKET, Key="mushroom-classifier/1/model.txt", Body=b"tree\n")
    with pytest.raises(RolloutError, match="cannot stop the shadow: .*no longer verifies"):
        _stop(stack)
    assert stack.alias()["FunctionVersion"] == "2"


class _AliasStuck:
    """A Lambda client whose alias moves are acknowledged but never happen."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_alias(self, **kwargs: Any) -> Any:
        return self._client.get_alias(FunctionName=kwargs["FunctionName"], Name=kwargs["Name"])


def test_what_the_alias_serves_is_read_back(stack: Stack) -> None:
    with pytest.raises(RolloutError, match="reads back as version 1 .* with shadow none, not"):
        _start(stack, "2", client=_AliasStuck(stack.lam))
