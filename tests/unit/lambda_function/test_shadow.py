"""Shadow scoring: a second bundle's verdict on every scored record, never served.

The contract: the ``shadow`` field is additive (the other fields are the same bytes with or
without it), the shadow's verdict is computed exactly like a served one, and a broken shadow
(checksum mismatch, load error, scoring exception, bad setting) never breaks serving.
"""

from __future__ import annotations

import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
import pytest

from lambda_function import handler
from lambda_function.bundle_store import load_bundle
from lambda_function.config import SHADOW_ENV, ShadowSetting, shadow_setting
from lambda_function.model import PREDICTOR_AUTO, ModelBundle
from lambda_function.service import ScoringService
from lambda_function.shadow import MAX_ERROR_CHARS, Shadow
from lambda_function.writer import InMemoryWriter
from tests.fakes.scorer import FakeLambdaContext, dataset_records, kinesis_event, valid_record

FIXED = datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=timezone.utc)
SHADOW_KEYS = ["model_version", "verdict", "p_poisonous"]


def _records(dataset: pd.DataFrame) -> list[dict[str, Any]]:
    """Every 7th row of the tiny dataset as an input record (the guard knows these species)."""
    return dataset_records(dataset.iloc[::7], "row")


@pytest.fixture
def event(tiny_dataset: pd.DataFrame) -> dict:
    payloads = [json.dumps(r).encode() for r in _records(tiny_dataset)]
    # Two rejections in the middle: they carry no shadow field.
    payloads[3:3] = [b"not json", json.dumps(valid_record(1, cap_diameter=-1.0)).encode()]
    return kinesis_event(payloads)


@pytest.fixture
def shadow_dir(tiny_bundle: Path, tmp_path: Path) -> Path:
    """Model 2: the tiny model with a lower threshold, so that its verdicts differ."""
    bundle = ModelBundle.load(tiny_bundle)
    bundle.model_version = "2"
    bundle.threshold = 0.05
    return bundle.save(tmp_path / "shadow" / "2")  # named as the deployer names it


def _setting(path: Path | str, version: str = "2") -> ShadowSetting:
    return ShadowSetting(str(path), version)


def _run(served: Path, event: dict, shadow: Shadow | None = None) -> tuple[list[bytes], Any]:
    writer = InMemoryWriter()
    service = ScoringService(load_bundle(str(served)), writer, clock=lambda: FIXED, shadow=shadow)
    outcome = service.score_records(event["Records"])
    return [data for _, _, data in writer.records], outcome


def _strip_shadow(line: bytes) -> tuple[bytes, dict | None]:
    """The record's bytes without its ``shadow`` field (always the last one), and the field."""
    record = json.loads(line)
    if "shadow" not in record:
        return line, None
    field = msgspec.json.encode(msgspec.json.decode(line)["shadow"])
    suffix = b',"shadow":' + field + b"}"
    assert line.endswith(suffix), line
    return line[: -len(suffix)] + b"}", record["shadow"]


def test_the_shadow_field_is_additive_and_the_shadows_own_verdict(
    tiny_bundle: Path, shadow_dir: Path, event: dict, tmp_path: Path
) -> None:
    without, plain = _run(tiny_bundle, event)
    shadow = Shadow.load(_setting(shadow_dir), str(tmp_path / "cache"), PREDICTOR_AUTO)
    with_shadow, outcome = _run(tiny_bundle, event, shadow)
    # The shadow's verdicts as the shadow bundle would serve them, on the same event.
    as_served, _ = _run(shadow_dir, event)

    assert len(with_shadow) == len(without) == len(event["Records"])
    fields = []
    for line, plain_line, shadow_served in zip(with_shadow, without, as_served):
        stripped, field = _strip_shadow(line)
        assert stripped == plain_line  # byte for byte, the served record is unchanged
        record = json.loads(plain_line)
        if record["status"] != "scored":
            assert field is None
            continue
        assert field is not None and list(field) == SHADOW_KEYS
        expected = json.loads(shadow_served)
        assert field == {
            "model_version": "2",
            "verdict": expected["verdict"],
            "p_poisonous": expected["p_poisonous"],
        }
        fields.append((record["verdict"], field["verdict"]))
    assert len(fields) == outcome.n_scored == plain.n_scored > 10
    assert any(served != shadowed for served, shadowed in fields)  # the two models differ
    assert (outcome.n_shadow_scored, outcome.n_shadow_errors) == (outcome.n_scored, 0)
    assert outcome.shadow_model_version == "2" and outcome.shadow_error is None
    assert plain.shadow_model_version is None and plain.n_shadow_scored == 0


def _assert_served_unchanged_with_error(
    tiny_bundle: Path, event: dict, shadow: Shadow, *reason: str
) -> None:
    without, _ = _run(tiny_bundle, event)
    with_shadow, outcome = _run(tiny_bundle, event, shadow)
    errors = set()
    for line, plain_line in zip(with_shadow, without, strict=True):
        stripped, field = _strip_shadow(line)
        assert stripped == plain_line
        if json.loads(line)["status"] == "scored":
            assert field is not None and field["verdict"] is None and field["p_poisonous"] is None
            assert field["model_version"] == "2" and list(field) == [*SHADOW_KEYS, "error"]
            errors.add(field["error"])
        else:
            assert field is None
    (error,) = errors
    assert len(error) <= MAX_ERROR_CHARS
    for part in reason:
        assert part in error, error
    assert outcome.n_shadow_errors == outcome.n_scored > 0 and outcome.n_shadow_scored == 0
    assert outcome.shadow_error == error


def test_a_shadow_whose_checksum_does_not_match_is_reported_not_served(
    tiny_bundle: Path, shadow_dir: Path, event: dict, tmp_path: Path
) -> None:
    model = shadow_dir / "model.txt"
    model.write_bytes(model.read_bytes().replace(b"tree", b"TREE", 1))
    shadow = Shadow.load(_setting(shadow_dir), str(tmp_path / "cache"), PREDICTOR_AUTO)
    assert shadow.bundle is None
    _assert_served_unchanged_with_error(
        tiny_bundle, event, shadow, "shadow not loaded: BundleError", "model.txt"
    )


def test_a_shadow_that_cannot_be_loaded_is_reported(
    tiny_bundle: Path, event: dict, tmp_path: Path
) -> None:
    missing = Shadow.load(_setting(tmp_path / "nowhere"), str(tmp_path / "c"), PREDICTOR_AUTO)
    _assert_served_unchanged_with_error(
        tiny_bundle, event, missing, "shadow not loaded", "not a directory"
    )

    def library_fails(*args: Any, **kwargs: Any) -> ModelBundle:
        raise OSError("cannot map the predictor " + "x" * 500)

    failing = Shadow.load(_setting("s3://b/m/2/"), "/tmp/c", PREDICTOR_AUTO, library_fails)
    _assert_served_unchanged_with_error(tiny_bundle, event, failing, "OSError: cannot map")


def test_a_shadow_that_raises_while_scoring_is_reported(
    tiny_bundle: Path, shadow_dir: Path, event: dict, tmp_path: Path, monkeypatch
) -> None:
    shadow = Shadow.load(_setting(shadow_dir), str(tmp_path / "cache"), PREDICTOR_AUTO)
    assert shadow.bundle is not None

    def boom(matrix: Any) -> Any:
        raise RuntimeError("native scorer failed")

    monkeypatch.setattr(shadow.bundle, "score_robust", boom)
    _assert_served_unchanged_with_error(
        tiny_bundle, event, shadow, "shadow scoring failed: RuntimeError: native scorer failed"
    )


def test_a_bad_shadow_setting_is_reported_on_the_records(tiny_bundle: Path, event: dict) -> None:
    setting = shadow_setting("s3:///2/")
    assert setting is not None and setting.problem is not None
    shadow = Shadow.load(setting, "/tmp/unused", PREDICTOR_AUTO)
    _assert_served_unchanged_with_error(tiny_bundle, event, shadow, "SHADOW_BUNDLE_URI=")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", None),
        ("   ", None),
        (" s3://models/mushroom-classifier/12/ ", ("s3://models/mushroom-classifier/12/", "12")),
        ("/var/bundles/3", ("/var/bundles/3", "3")),
    ],
)
def test_shadow_settings(raw: str, expected: tuple[str, str] | None) -> None:
    setting = shadow_setting(raw)
    if expected is None:
        assert setting is None
    else:
        assert setting == ShadowSetting(*expected)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("s3://", "is not s3://<models-bucket>/<model>/<version>/"),
        ("s3://models/", "is not s3://<models-bucket>/<model>/<version>/"),
        ("https://example.com/b/", "neither an s3:// URI nor a local bundle directory"),
        ("s3://models/m/1/\n2", "whitespace or control characters"),
    ],
)
def test_bad_shadow_settings_name_the_variable_and_do_not_fail_the_settings(
    raw: str, problem: str
) -> None:
    from lambda_function.config import Settings

    settings = Settings.from_env(
        {"MODEL_BUNDLE_URI": "s3://models/m/1/", "OUTPUT_STREAM_NAME": "v", SHADOW_ENV: raw}
    )
    assert settings.model_bundle_uri == "s3://models/m/1/"
    assert settings.shadow is not None and settings.shadow.problem is not None
    assert (
        settings.shadow.problem.startswith(f"{SHADOW_ENV}=") and problem in settings.shadow.problem
    )


def test_a_shadow_has_a_bundle_or_an_error() -> None:
    with pytest.raises(ValueError):
        Shadow("2")


# --- the handler: cold start, metrics, logs ------------------------------------------------


def _emf(captured: str) -> dict:
    (line,) = [json.loads(x) for x in captured.splitlines() if x.startswith("{") and "_aws" in x]
    return line


@pytest.fixture
def container(monkeypatch: pytest.MonkeyPatch, tiny_bundle: Path, tmp_path: Path) -> Any:
    """The handler's real get_service over local bundles, with its writer kept in memory."""
    monkeypatch.setenv("MODEL_BUNDLE_URI", str(tiny_bundle))
    monkeypatch.setenv("OUTPUT_STREAM_NAME", "mushroom-verdicts")
    monkeypatch.setenv("BUNDLE_CACHE_DIR", str(tmp_path / "cache"))
    for key, value in (("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "test")):
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.delenv(SHADOW_ENV, raising=False)
    handler.get_service.cache_clear()
    writer = InMemoryWriter()

    class Writer:  # the Kinesis writer the container builds, replaced by one in memory
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def write(self, batch: Any) -> list[str]:
            return writer.write(batch)

    monkeypatch.setattr(handler, "KinesisOutputWriter", Writer)
    monkeypatch.setattr(handler.gc, "freeze", lambda: None)  # not in a test process
    yield writer
    handler.get_service.cache_clear()


@pytest.fixture
def logs() -> Any:
    """What the function's Logger writes (its handler holds the stdout of import time)."""
    stream = io.StringIO()
    previous = handler.logger.registered_handler.setStream(stream)
    yield stream
    handler.logger.registered_handler.setStream(previous)


def test_the_handler_serves_with_a_broken_shadow_and_reports_it(
    container: InMemoryWriter, shadow_dir: Path, event: dict, monkeypatch, capsys, logs
) -> None:
    (shadow_dir / "model.txt").write_bytes(b"tree\n")
    monkeypatch.setenv(SHADOW_ENV, str(shadow_dir))
    response = handler.lambda_handler(event, FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    outputs = [json.loads(data) for _, _, data in container.records]
    assert len(outputs) == len(event["Records"])
    scored = [o for o in outputs if o["status"] == "scored"]
    assert scored and all(o["shadow"]["error"].startswith("shadow not loaded") for o in scored)
    assert all(o["verdict"] in ("edible", "poisonous", "unknown") for o in scored)
    emf = _emf(capsys.readouterr().out)
    assert emf["ShadowErrors"] in (len(scored), [float(len(scored))])
    assert emf["ShadowVerdicts"] in (0, [0.0]) and emf["shadow_model_version"] == "2"
    messages = [json.loads(x)["message"] for x in logs.getvalue().splitlines()]
    assert any(m.startswith("shadow bundle not loaded: serving without it") for m in messages)
    assert any(m.startswith("shadow failed on this batch") for m in messages)


def test_the_handler_scores_with_a_good_shadow(
    container: InMemoryWriter, shadow_dir: Path, event: dict, monkeypatch, capsys
) -> None:
    monkeypatch.setenv(SHADOW_ENV, str(shadow_dir))
    handler.lambda_handler(event, FakeLambdaContext())
    outputs = [json.loads(data) for _, _, data in container.records]
    scored = [o for o in outputs if o["status"] == "scored"]
    assert all(o["shadow"]["model_version"] == "2" and "error" not in o["shadow"] for o in scored)
    assert all(not math.isnan(o["shadow"]["p_poisonous"]) for o in scored)
    assert all("shadow" not in o for o in outputs if o["status"] != "scored")
    emf = _emf(capsys.readouterr().out)
    assert emf["ShadowVerdicts"] in (len(scored), [float(len(scored))])
    assert emf["ShadowErrors"] in (0, [0.0])


def test_without_a_shadow_the_handler_emits_no_shadow_metrics(
    container: InMemoryWriter, event: dict, capsys
) -> None:
    handler.lambda_handler(event, FakeLambdaContext())
    assert all("shadow" not in json.loads(data) for _, _, data in container.records)
    emf = _emf(capsys.readouterr().out)
    assert "ShadowErrors" not in emf and "ShadowVerdicts" not in emf


def test_each_shadow_field_is_the_bytes_of_its_own_verdict() -> None:
    # The fields are encoded once per distinct (verdict, rounded p_poisonous) and copied: every
    # record's field must still be exactly the encoding of its own ShadowVerdict, in order,
    # with pairs that share a probability but not a verdict, probabilities that round alike or
    # apart, and the ends of [0, 1].
    import numpy as np

    from lambda_function.service import ShadowVerdict, _shadow_fields
    from lambda_function.shadow import ShadowScores

    p = np.array([0.5, 0.5, 0.5, 0.12344, 0.12346, 0.12344, 0.0, 1.0, 1e-9, 0.99999, 0.5])
    codes = np.array([0, 1, 2, 0, 0, 0, 0, 1, 0, 1, 0], dtype=np.int8)
    fields = list(_shadow_fields(ShadowScores("7", p, codes)))
    verdicts = ("edible", "poisonous", "unknown")
    expected = [
        msgspec.json.encode(ShadowVerdict("7", verdicts[c], q))
        for c, q in zip(codes.tolist(), np.round(p, 4).tolist())  # as the served p_poisonous
    ]
    assert len(fields) == len(p)
    assert [msgspec.json.encode(f) for f in fields] == expected
    assert json.loads(expected[1]) == {
        "model_version": "7",
        "verdict": "poisonous",
        "p_poisonous": 0.5,
    }
