"""Which version a mapping or an invocation runs: qualifier parsing and alias resolution,
with fakes for the Lambda API and the worker (no AWS, no moto)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from emulation.lambda_runtime import runtime
from emulation.lambda_runtime.model import (
    LATEST,
    AliasTarget,
    FunctionConfig,
    FunctionRef,
    InvokeOutcome,
    QualifierError,
    WeightedAliasUnsupported,
    parse_function_ref,
    resolve_version,
)

BASE = "arn:aws:lambda:us-east-1:123456789012:function:f"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("f", FunctionRef("f")),
        ("f:$LATEST", FunctionRef("f")),
        ("f:7", FunctionRef("f", "7")),
        ("f:live", FunctionRef("f", "live")),
        (BASE, FunctionRef("f")),
        (f"{BASE}:$LATEST", FunctionRef("f")),
        (f"{BASE}:12", FunctionRef("f", "12")),
        (f"{BASE}:blue-2_x", FunctionRef("f", "blue-2_x")),
    ],
)
def test_a_name_or_arn_parses_to_function_and_qualifier(given: str, expected: FunctionRef) -> None:
    assert parse_function_ref(given) == expected


def test_kinds_and_arns_of_references() -> None:
    assert [parse_function_ref(n).kind for n in ("f", "f:3", "f:live")] == [
        "latest",
        "version",
        "alias",
    ]
    # Any ARN of the function gives the reference's ARN (what the context reports).
    assert FunctionRef("f", "live").arn(f"{BASE}:3") == f"{BASE}:live"
    assert FunctionRef("f").arn(f"{BASE}:3") == BASE
    assert parse_function_ref("f", qualifier="live") == FunctionRef("f", "live")
    assert parse_function_ref("f:2", qualifier="live") == FunctionRef("f", "2")


@pytest.mark.parametrize(
    "bad", ["f:bad qualifier", "arn:aws:s3:::bucket", f"{BASE}:a:b", ":live", "f:a.b"]
)
def test_malformed_names_are_refused(bad: str) -> None:
    with pytest.raises(QualifierError):
        parse_function_ref(bad)


def test_only_an_alias_is_looked_up_and_a_weighted_alias_is_refused() -> None:
    asked: list[tuple[str, str]] = []

    def get_alias(name: str, alias: str) -> AliasTarget:
        asked.append((name, alias))
        return AliasTarget("4")

    assert resolve_version(FunctionRef("f"), get_alias) == LATEST
    assert resolve_version(FunctionRef("f", "9"), get_alias) == "9"
    assert asked == []
    assert resolve_version(FunctionRef("f", "live"), get_alias) == "4"
    assert asked == [("f", "live")]
    with pytest.raises(WeightedAliasUnsupported, match="one version per alias"):
        resolve_version(FunctionRef("f", "live"), lambda n, a: AliasTarget("4", {"5": 0.1}))


# -- LocalFunction over a fake Lambda API ------------------------------------------------------


def _config(version: str, greeting: str) -> FunctionConfig:
    arn = BASE if version == LATEST else f"{BASE}:{version}"
    return FunctionConfig(
        name="f",
        arn=arn,
        handler="app.handle",
        runtime="python3.12",
        timeout_s=3,
        memory_mb=128,
        package_type="Zip",
        code_sha256=f"sha-{version}",
        role="arn:aws:iam::123456789012:role/r",
        environment={"GREETING": greeting},
        version=version,
    )


class FakeLambda:
    """Versions, one alias and a call log, standing in for GetFunction and GetAlias."""

    def __init__(self) -> None:
        self.versions = {LATEST: _config(LATEST, "latest"), "1": _config("1", "v1")}
        self.alias = "1"
        self.calls: list[str] = []
        self.alias_error: Exception | None = None

    def get_function(self, name: str, client: Any = None, version: str = LATEST) -> Any:
        self.calls.append(f"GetFunction:{version}")
        return self.versions[version]

    def get_alias_target(self, name: str, alias: str, client: Any = None) -> AliasTarget:
        self.calls.append(f"GetAlias:{alias}")
        if self.alias_error is not None:
            raise self.alias_error
        return AliasTarget(self.alias)


class FakeWorker:
    def __init__(self, config: FunctionConfig, code_dir: Path, **kwargs: Any) -> None:
        self.fn, self.code_dir = config, code_dir
        self.invoked_function_arn = kwargs["invoked_function_arn"]
        self.cold_starts, self.max_memory_used_mb, self.closed = 1, 0.0, False

    def invoke(self, event: Any) -> InvokeOutcome:
        return InvokeOutcome(
            "req", self.fn.environment["GREETING"], executed_version=self.fn.version
        )

    def close(self) -> None:
        self.closed = True


@pytest.fixture()
def fake_lambda(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeLambda:
    fake = FakeLambda()
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # Credentials in the environment end botocore's chain there: without them, building the
    # STS/IAM clients probes the EC2 metadata service (pytest-socket refuses that).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setattr(runtime.aws, "get_function", fake.get_function)
    monkeypatch.setattr(runtime.aws, "get_alias_target", fake.get_alias_target)
    monkeypatch.setattr(runtime.aws, "prepare_code", lambda fn, root, s3: tmp_path / fn.version)
    monkeypatch.setattr(runtime, "LambdaWorker", FakeWorker)
    return fake


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_alias_move_takes_effect_at_the_next_checked_batch_boundary(
    fake_lambda: FakeLambda, tmp_path: Path
) -> None:
    clock = Clock()
    function = runtime.LocalFunction(
        "f:live", state_dir=tmp_path, lambda_client=object(), alias_check_s=1.0, clock=clock
    )
    first = function.worker
    assert function.config.version == "1" and first.invoked_function_arn == f"{BASE}:live"
    assert function.invoke({}).executed_version == "1"

    fake_lambda.versions["2"] = _config("2", "v2")
    fake_lambda.alias = "2"
    fake_lambda.calls.clear()
    clock.now += 0.5
    function.at_batch_boundary()  # checked less than alias_check_s ago: no call yet
    assert fake_lambda.calls == [] and function.config.version == "1"
    clock.now += 0.5
    function.at_batch_boundary()
    assert fake_lambda.calls == ["GetAlias:live", "GetFunction:2"]
    assert first.closed and function.worker is not first  # a new execution environment
    assert function.worker.invoked_function_arn == f"{BASE}:live"
    outcome = function.invoke({})
    assert (outcome.executed_version, outcome.payload) == ("2", "v2")

    # Unmoved: one GetAlias, no GetFunction (a published version does not change).
    fake_lambda.calls.clear()
    clock.now += 1.0
    function.at_batch_boundary()
    assert fake_lambda.calls == ["GetAlias:live"]

    # Rollback: back to version 1, in another new environment.
    fake_lambda.alias = "1"
    clock.now += 1.0
    function.at_batch_boundary()
    assert function.invoke({}).payload == "v1"
    assert function.invocations_by_version == {"1": 2, "2": 1}
    assert function.cold_starts == 3


def test_a_failing_alias_lookup_keeps_the_version_then_stops_the_run(
    fake_lambda: FakeLambda, tmp_path: Path
) -> None:
    clock = Clock()
    function = runtime.LocalFunction(
        "f:live", state_dir=tmp_path, lambda_client=object(), alias_check_s=0.0, clock=clock
    )
    fake_lambda.alias_error = ClientError(
        {"Error": {"Code": "ServiceUnavailable", "Message": "busy"}}, "GetAlias"
    )
    for _ in range(runtime.MAX_ALIAS_CHECK_FAILURES - 1):
        function.at_batch_boundary()
        assert function.invoke({}).executed_version == "1"
    with pytest.raises(ClientError):
        function.at_batch_boundary()
    # Once it answers again the count starts over.
    fake_lambda.alias_error = None
    function.at_batch_boundary()
    assert function._alias_check_failures == 0


def test_a_version_is_never_looked_up_again_and_latest_follows_redeployments(
    fake_lambda: FakeLambda, tmp_path: Path
) -> None:
    pinned = runtime.LocalFunction(f"{BASE}:1", state_dir=tmp_path, lambda_client=object())
    latest = runtime.LocalFunction("f", state_dir=tmp_path, lambda_client=object())
    assert latest.worker.invoked_function_arn == BASE
    fake_lambda.calls.clear()
    pinned.at_batch_boundary()
    latest.at_batch_boundary()  # $LATEST is re-read on the refresh_s schedule, not per batch
    assert not pinned.refresh() and fake_lambda.calls == []
    fake_lambda.versions[LATEST] = _config(LATEST, "redeployed")
    assert latest.refresh() and latest.invoke({}).payload == "redeployed"
    assert pinned.invoke({}).payload == "v1"
