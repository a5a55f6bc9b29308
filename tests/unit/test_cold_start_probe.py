"""The cold-start probe of ``make bench`` (``scripts/cold_start_probe.py``), run as its command
on a fake function: it answers PutRecords inside botocore, refuses any other request, and
lists modules loaded from outside its paths. Tests import no script code."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

from config.settings import REPO_ROOT

PROBE = REPO_ROOT / "scripts" / "cold_start_probe.py"
HANDLER = """
import botocore.session

OPERATION = {operation!r}


class Service:
    bundle = object()  # a bundle without a predictor attribute, as before the compiled one

    def __init__(self):
        session = botocore.session.get_session()
        self.client = session.create_client("kinesis", region_name="us-east-1")


_service = []


def get_service():
    if not _service:
        _service.append(Service())
    return _service[0]


def lambda_handler(event, context):
    {extra}
    records = [{{"Data": b"{{}}", "PartitionKey": "p"}} for _ in event["Records"]]
    if OPERATION == "put_records":
        answer = get_service().client.put_records(StreamName="verdicts", Records=records)
        assert answer["FailedRecordCount"] == 0 and len(answer["Records"]) == len(records)
    else:
        get_service().client.describe_stream(StreamName="verdicts")
    return {{"batchItemFailures": []}}
"""


def _probe(tmp_path: Path, operation: str = "put_records", extra: str = "", absent=()) -> dict:
    package = tmp_path / "task"
    (package / "lambda_function").mkdir(parents=True)
    (package / "lambda_function" / "__init__.py").write_text("")
    handler = HANDLER.format(operation=operation, extra=extra)
    (package / "lambda_function" / "handler.py").write_text(handler)
    spec = {
        "paths": [str(package), sysconfig.get_paths()["purelib"]],  # botocore from here
        "event": {"Records": [{}, {}, {}]},
        "absent": list(absent),
    }
    env = {
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        # Should the probe not answer, the request goes to a closed local port, not to AWS.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_MAX_ATTEMPTS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-B", str(PROBE), json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        return {"error": done.stderr}
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("COLD ")]
    return json.loads(line[len("COLD ") :])


def test_the_probe_answers_put_records_and_times_the_cold_start(tmp_path):
    report = _probe(tmp_path)
    assert "error" not in report, report.get("error")
    assert report["predictor"] == "lightgbm"  # no predictor attribute: LightGBM's code
    assert report["leaked"] == [] and report["present"] == []
    assert report["botocore"].startswith(sysconfig.get_paths()["purelib"])
    parts = report["import_ms"] + report["load_ms"] + report["first_invocation_ms"]
    assert 0 < parts <= report["total_ms"] + 1e-6


def test_the_probe_refuses_any_other_request(tmp_path):
    report = _probe(tmp_path, operation="describe_stream")
    assert "answers only Kinesis_20131202.PutRecords" in report["error"]


def test_the_probe_lists_modules_from_outside_its_paths(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "stray.py").write_text("")
    extra = f"import sys; sys.path.append({str(outside)!r}); import stray"
    report = _probe(tmp_path, extra=extra, absent=("stray", "lightgbm"))
    assert report["leaked"] == [f"stray ({outside / 'stray.py'})"]
    assert report["present"] == ["stray"]
