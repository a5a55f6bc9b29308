"""Scorer benchmarks (``make bench``) -> ``reports/benchmark.json``.

- ``handler_1000_ms``: one 1,000-record Kinesis event through the real ``lambda_handler``
  (Powertools, metrics, logs), output writer in memory, fake Lambda context, scoring with the
  bundle's compiled predictor (``predictor`` says which one served) and the misread check
  (``misread`` says which implementation); ``handler_without_misread_1000_ms``: the same with
  the check replaced by "no variant blocks" (alternating with the others in the same runs),
  ``misread_check_1000_ms``: the check alone on the batch's verdicts, with the rows' leaves
  as the handler has them (``misread_leaves``: recorded by the compiled trees, or walked by
  the check for a bundle compiled before they recorded them);
- ``raw_predict_1000_ms``: LightGBM's ``Booster.predict(num_threads=1)`` on the same rows,
  already encoded, measured alternately with the handler so that the ratio compares like with
  like; ``compiled_predict_1000_ms``: the compiled predictor alone on the same matrix;
  ``handler_vs_raw_ratio`` and ``compiled_vs_raw_ratio``: medians of the per-run ratios;
  ``handler_vs_raw_cpu_ratio``: the same handler / raw pairs in CPU time (reported only);
- ``handler_with_shadow_1000_ms``: the same handler on the same event with a shadow bundle
  (``SHADOW_BUNDLE_URI``, loaded by ``get_service``; a second predict and misread check per
  batch, the decoding and encoding shared), alternating with the handler without it in the same
  runs; ``shadow_vs_handler_ratio``: the median of the per-run ratios (target <= 1.5);
- ``per_record_pattern_1000_ms``: the common pattern, per record: base64 + ``json.loads``, a
  one-row pandas DataFrame, ``predict``, one ``put_record`` to an in-memory fake;
- ``cold_start_ms``: a new process imports the handler, loads the bundle (through the real
  ``get_service``: files verified, the compiled predictor loaded) and scores one record, run
  from the default Lambda package itself, unzipped (built with ``deployment/package_lambda.py``,
  cached under ``.local/bench/`` by its inputs' digest), isolated from this environment
  (``python -I -S -B``: ``sys.path`` = the package, then the runtime's boto3/botocore);
  PutRecords is answered inside botocore, so no network is involved
  (``scripts/cold_start_probe.py``). ``cold_start_baseline_ms``: the same for today's package
  as issue 12 found it (commit ``BASELINE_COMMIT``: LightGBM, SciPy, libgomp, boto3), built by
  that commit's own builder from ``git archive``; ``cold_start_vs_baseline_ratio`` (the
  target). ``cold_start_lightgbm_ms``: the current ``lightgbm`` flavour with
  ``SCORER_PREDICTOR=lightgbm`` (reported only). ``cold_start_shadow_ms``: the default package
  loading two bundles (``SHADOW_BUNDLE_URI`` set; the probe checks that the shadow loaded),
  ``cold_start_shadow_vs_compiled_ratio``. The four alternate, so they see the same load;
  ratios are medians of the per-run ratios.

Medians of ``--runs`` runs (at least 5). The machine is shared: the report includes the load
average, and every number of one run is measured in that same run.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import hashlib
import io
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Callable

from config.settings import LOCAL_DIR, REPO_ROOT

ROOT = REPO_ROOT
DEFAULT_BUNDLE = LOCAL_DIR / "bundles" / "mushroom-classifier" / "champion"
#: Where the bench writes a copy of the champion as the shadow when none is given.
SHADOW_COPY = LOCAL_DIR / "bench" / "shadow-bundle"
DEFAULT_OUTPUT = ROOT / "reports" / "benchmark.json"
DATASET_CSV = ROOT / "data" / "secondary_data.csv"
N_RECORDS = 1000
TARGETS = {
    "handler_1000_ms": ("<=", 10.0),
    # The handler with the misread check; without it, the target of the msgspec path.
    "handler_vs_raw_ratio": ("<=", 2.0),
    "handler_without_misread_vs_raw_ratio": ("<=", 1.0),
    "compiled_vs_raw_ratio": ("<=", 0.4),
    "speedup_vs_per_record": (">=", 100.0),
    "cold_start_ms": ("<=", 1000.0),
    "cold_start_vs_baseline_ratio": ("<=", 0.5),
    "shadow_vs_handler_ratio": ("<=", 1.5),
}


class FakeContext:
    function_name = "mushroom-scorer"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:mushroom-scorer"
    aws_request_id = "bench"
    log_group_name = "/aws/lambda/mushroom-scorer"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def sample_records(n: int = N_RECORDS, seed: int = 0) -> tuple[list[dict[str, Any]], str]:
    """n observations: rows of the dataset when present (data/), else synthetic ones."""
    from lambda_function import schema

    rng = random.Random(seed)
    if DATASET_CSV.is_file():
        with DATASET_CSV.open(newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter=";"))
        records = []
        for i, row in enumerate(rng.sample(rows, n)):
            record: dict[str, Any] = {"mushroom_id": f"bench-{i:06d}"}
            for feature in schema.FEATURES:
                value = row[feature.dataset_column]
                record[feature.name] = float(value) if feature.is_numeric else (value or None)
            records.append(record)
        return records, "dataset sample"
    records = []
    for i in range(n):
        record = {"mushroom_id": f"bench-{i:06d}"}
        for feature in schema.FEATURES:
            if feature.is_numeric:
                record[feature.name] = round(rng.uniform(0.5, 20), 2)
            else:
                record[feature.name] = rng.choice((*feature.vocabulary, None))
        records.append(record)
    return records, "synthetic"


def kinesis_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    first = 49590338271490256608559692538361571095921575989136588898
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record["mushroom_id"],
                    "sequenceNumber": str(first + i),
                    "data": base64.b64encode(json.dumps(record).encode()).decode(),
                    "approximateArrivalTimestamp": 1764244800.123,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{first + i}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/mushroom-scorer",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/"
                "mushroom-observations",
            }
            for i, record in enumerate(records)
        ]
    }


def shadow_bundle(bundle_dir: Path, shadow_dir: Path | None) -> Path:
    """The shadow's bundle directory: ``shadow_dir``, else a copy of the champion saved under
    another model version (same trees: the same cost as a retrained model of that size)."""
    if shadow_dir is not None:
        return shadow_dir
    from lambda_function.model import ModelBundle

    bundle = ModelBundle.load(bundle_dir)
    bundle.model_version = f"{bundle.model_version}-shadow"
    shutil.rmtree(SHADOW_COPY, ignore_errors=True)
    return bundle.save(SHADOW_COPY)


def _lambda_environment(bundle_dir: Path) -> dict[str, str]:
    """What the function's configuration sets, plus fake credentials (nothing is sent)."""
    return {
        "MODEL_BUNDLE_URI": str(bundle_dir),
        "OUTPUT_STREAM_NAME": "mushroom-verdicts",
        "POWERTOOLS_SERVICE_NAME": "mushroom-scorer",
        "POWERTOOLS_METRICS_NAMESPACE": "MushroomScorer",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def timed(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return (time.perf_counter() - started) * 1000


def cpu_timed(function: Callable[[], Any]) -> float:
    return timed_cpu(function)[1]


def timed_cpu(function: Callable[[], Any]) -> tuple[float, float]:
    """Wall time and this process's CPU time (all its threads), in ms: on a loaded machine the
    CPU time leaves out the waits for a core, which inflate the wall time."""
    started, started_cpu = time.perf_counter(), time.process_time()
    function()
    return (time.perf_counter() - started) * 1000, (time.process_time() - started_cpu) * 1000


class NoMisreadCheck:
    """The misread check replaced by "no variant blocks": the handler as it was without it."""

    def check(self, matrix: Any, codes: Any, predict: Any, leaves: Any = None) -> Any:
        import numpy as np

        from lambda_function.misread import NO_MISREAD, MisreadResult

        n = len(codes)
        return MisreadResult(codes, np.full(n, NO_MISREAD, dtype=np.int32), np.zeros(n))


@contextlib.contextmanager
def without_misread(bundle: Any) -> Any:
    real = bundle.misread
    bundle.__dict__["_misread"] = NoMisreadCheck()
    try:
        yield
    finally:
        bundle.__dict__["_misread"] = real


def bench_handler_and_raw(
    bundle_dir: Path, event: dict, runs: int, shadow_dir: Path
) -> dict[str, Any]:
    """Handler and raw predict, alternately, ``runs`` times each (after warm-up); the handler
    with the shadow of ``shadow_dir`` alternating with them."""
    from lambda_function import handler
    from lambda_function.writer import InMemoryWriter

    # The container's own service (settings from the environment, bundle, shadow, Kinesis
    # client, gc.freeze), with its Kinesis writer swapped for one in memory. The shadow is
    # attached only for the runs that measure it.
    os.environ.update(_lambda_environment(bundle_dir))
    os.environ["SHADOW_BUNDLE_URI"] = str(shadow_dir)
    handler.get_service.cache_clear()
    service = handler.get_service()
    del os.environ["SHADOW_BUNDLE_URI"]
    shadow = service.shadow
    if shadow is None or shadow.error is not None:
        raise SystemExit(f"the shadow bundle {shadow_dir} did not load: {shadow and shadow.error}")
    service.shadow = None
    writer = InMemoryWriter()
    service.writer = writer
    bundle = service.bundle
    booster = bundle.booster  # LightGBM's own, from the same model.txt
    predictor = bundle.predictor
    context = FakeContext()
    matrix = service.decoder.decode([r["kinesis"]["data"] for r in event["Records"]]).matrix
    matrix = matrix.copy(order="C")

    def invoke() -> None:
        response = handler.lambda_handler(event, context)
        assert response == {"batchItemFailures": []}, response

    def invoke_with_shadow() -> None:
        service.shadow = shadow
        try:
            invoke()
        finally:
            service.shadow = None

    handler_ms, raw_ms, score_ms, compiled_ms, plain_ms, check_ms = [], [], [], [], [], []
    shadow_ms, shadow_cpu_ms = [], []
    _, codes, leaves = bundle.score_with_leaves(matrix)
    handler_cpu_ms, raw_cpu_ms = [], []
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        # Logs and EMF metrics are written as in Lambda (to stdout), here to /dev/null.
        stream = handler.logger.registered_handler.setStream(sink)  # the one it had
        for i in range(runs + 3):
            writer.records.clear()
            elapsed_handler, cpu_handler = timed_cpu(invoke)
            elapsed_raw, cpu_raw = timed_cpu(lambda: booster.predict(matrix, num_threads=1))
            elapsed_compiled = timed(lambda: predictor.predict(matrix))
            # What the handler does instead of the raw call: the species guard, then predict
            # with rows grouped by candidate species (same values, fewer branch mispredictions).
            elapsed_score = timed(lambda: bundle.score_codes(matrix))
            elapsed_check = timed(
                lambda: bundle.misread.check(matrix, codes, predictor.predict, leaves)
            )
            writer.records.clear()
            with without_misread(bundle):
                elapsed_plain = timed(invoke)
            writer.records.clear()
            elapsed_shadow, cpu_shadow = timed_cpu(invoke_with_shadow)
            if i >= 3:  # warm-up runs are not counted
                shadow_ms.append(elapsed_shadow)
                shadow_cpu_ms.append(cpu_shadow)
                plain_ms.append(elapsed_plain)
                check_ms.append(elapsed_check)
                handler_ms.append(elapsed_handler)
                raw_ms.append(elapsed_raw)
                handler_cpu_ms.append(cpu_handler)
                raw_cpu_ms.append(cpu_raw)
                score_ms.append(elapsed_score)
                compiled_ms.append(elapsed_compiled)
        handler.logger.registered_handler.setStream(stream)
    writer.records.clear()
    invoke()  # the outputs below are the served ones, with the check
    outputs = [json.loads(data) for _, _, data in writer.records]
    assert len(outputs) == len(event["Records"])
    writer.records.clear()
    invoke_with_shadow()  # the same verdicts, each scored record with the shadow's
    shadowed = [json.loads(data) for _, _, data in writer.records]
    per_call = ("shadow", "scored_at")
    assert [{k: v for k, v in o.items() if k not in per_call} for o in shadowed] == [
        {k: v for k, v in o.items() if k not in per_call} for o in outputs
    ]
    scored = [o for o in shadowed if o["status"] == "scored"]
    assert all(o["shadow"].get("error") is None for o in scored), scored[0]["shadow"]
    shadow_agrees = sum(o["shadow"]["verdict"] == o["verdict"] for o in scored)
    stages = handler_stages(service, event, runs)
    verdicts = {v: sum(o["verdict"] == v for o in outputs) for v in ("edible", "poisonous")}
    verdicts["unknown"] = sum(o["verdict"] == "unknown" for o in outputs)
    verdicts["rejected"] = sum(o["status"] == "rejected" for o in outputs)
    verdicts["unknown_by_misread"] = sum(bool(o.get("misread")) for o in outputs)
    return {
        "handler_1000_ms": statistics.median(handler_ms),
        "handler_1000_ms_min": min(handler_ms),
        "raw_predict_1000_ms": statistics.median(raw_ms),
        "raw_predict_1000_ms_min": min(raw_ms),
        "handler_vs_raw_ratio": statistics.median(h / r for h, r in zip(handler_ms, raw_ms)),
        # The same pairs in CPU time (process_time; its resolution is ~1 us here).
        "handler_1000_cpu_ms": statistics.median(handler_cpu_ms),
        "raw_predict_1000_cpu_ms": statistics.median(raw_cpu_ms),
        "handler_vs_raw_cpu_ratio": statistics.median(
            h / r for h, r in zip(handler_cpu_ms, raw_cpu_ms)
        ),
        "handler_without_misread_1000_ms": statistics.median(plain_ms),
        "handler_without_misread_vs_raw_ratio": statistics.median(
            h / r for h, r in zip(plain_ms, raw_ms)
        ),
        "misread_check_1000_ms": statistics.median(check_ms),
        "handler_with_shadow_1000_ms": statistics.median(shadow_ms),
        "handler_with_shadow_1000_cpu_ms": statistics.median(shadow_cpu_ms),
        "shadow_vs_handler_ratio": statistics.median(s / h for s, h in zip(shadow_ms, handler_ms)),
        "shadow_vs_handler_cpu_ratio": statistics.median(
            s / h for s, h in zip(shadow_cpu_ms, handler_cpu_ms)
        ),
        "shadow_model_version": shadow.model_version,
        "shadow_agreement": f"{shadow_agrees} of {len(scored)} scored records",
        "misread": bundle.misread.kind,
        # "per call": the bundle's library predates the layout at load (retrain to measure it).
        "misread_layout": bundle.misread.layout,
        "shadow_misread_layout": shadow.bundle.misread.layout,
        # The rows' leaves: recorded by the compiled trees while they score (read by the
        # check), or found by the check itself (a bundle compiled before they recorded them).
        "misread_leaves": leaves_source(bundle),
        "shadow_misread_leaves": leaves_source(shadow.bundle),
        "compiled_predict_1000_ms": statistics.median(compiled_ms),
        "compiled_predict_1000_ms_min": min(compiled_ms),
        "compiled_vs_raw_ratio": statistics.median(c / r for c, r in zip(compiled_ms, raw_ms)),
        "bundle_score_1000_ms": statistics.median(score_ms),
        "handler_stages_cpu_ms": stages,
        "predictor": predictor.kind,
        "scorer": "native" if bundle.scorer is not None else "python",
        "verdicts": verdicts,
        "model_trees": bundle.n_trees,
        "model_version": bundle.model_version,
    }


def leaves_source(bundle: Any) -> str:
    """Where the bundle's misread check takes the rows' leaves from (see the report)."""
    if bundle.records_leaves and bundle.misread.reads_leaves:
        return "compiled trees"
    return "walked by the check"


def handler_stages(service: Any, event: dict, runs: int) -> dict[str, float]:
    """Medians of the handler's stages on the same event (where its time goes): decoding
    (base64, JSON, validation, matrix: msgspec), scoring (guard, grouping, predict, verdicts),
    the output records (built and encoded by msgspec), and the rest of ``score_records`` and of
    the handler by difference. In CPU time (``process_time``): on a shared machine, the waits
    for a core make wall-time stages useless (measured: negative differences)."""
    from lambda_function import handler

    records = event["Records"]
    data = [r["kinesis"]["data"] for r in records]
    sequence_numbers = [r["kinesis"]["sequenceNumber"] for r in records]
    batch = service.decoder.decode(data)
    bundle = service.bundle
    # As score_robust does it: scored (with the leaves when the trees record them), checked.
    p, codes, leaves = bundle.score_with_leaves(batch.matrix)
    robust = bundle.misread.check(batch.matrix, codes, bundle.predict_proba, leaves)

    def encode() -> None:
        service.encode_outputs(batch, sequence_numbers, p, robust, "2026-01-01T00:00:00.000Z")

    timings: dict[str, list[float]] = {
        k: [] for k in ("decode", "score", "misread", "encode", "service", "handler")
    }
    context = FakeContext()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        stream = handler.logger.registered_handler.setStream(sink)  # the one it had
        for _ in range(runs):
            service.writer.records.clear()
            timings["decode"].append(cpu_timed(lambda: service.decoder.decode(data)))
            timings["score"].append(cpu_timed(lambda: bundle.score_with_leaves(batch.matrix)))
            timings["misread"].append(
                cpu_timed(
                    lambda: bundle.misread.check(batch.matrix, codes, bundle.predict_proba, leaves)
                )
            )
            timings["encode"].append(cpu_timed(encode))
            timings["service"].append(cpu_timed(lambda: service.score_records(records)))
            service.writer.records.clear()
            timings["handler"].append(cpu_timed(lambda: handler.lambda_handler(event, context)))
        handler.logger.registered_handler.setStream(stream)
    medians = {k: statistics.median(v) for k, v in timings.items()}
    return {
        "decode": medians["decode"],
        "score": medians["score"],
        "misread_check": medians["misread"],
        "encode_outputs": medians["encode"],
        "rest_of_service": medians["service"]
        - medians["decode"]
        - medians["score"]
        - medians["misread"]
        - medians["encode"],
        "powertools_and_handler": medians["handler"] - medians["service"],
        "handler": medians["handler"],
    }


def bench_per_record(bundle_dir: Path, event: dict, runs: int) -> dict[str, float]:
    """The common per-record pattern; median ms per 1,000 records.

    ``per_record_pattern_1000_ms``: per record, ``json.loads`` of the base64-decoded data, a
    one-row DataFrame, the categorical codes mapped with pandas, ``predict``, ``put_record``,
    as a pandas-based handler does it. ``per_record_lean_1000_ms``: the same loop with the
    encoding done by the bundle's numpy encoder (a lower bound for any per-record handler).
    """
    import pandas as pd

    from lambda_function.model import ModelBundle

    bundle = ModelBundle.load(bundle_dir)
    encoder = bundle.encoder
    columns = list(encoder.feature_order)
    lookups = {
        name: {code: float(i) for i, code in enumerate(codes)}
        for name, codes in encoder.vocabularies.items()
    }

    class FakeKinesis:
        def __init__(self) -> None:
            self.records: list[dict] = []

        def put_record(self, **kwargs: Any) -> dict:
            self.records.append(kwargs)
            return {"SequenceNumber": str(len(self.records)), "ShardId": "shardId-000000000000"}

    def pandas_features(observation: dict) -> Any:
        frame = pd.DataFrame([observation], columns=columns)
        for name, lookup in lookups.items():
            frame[name] = frame[name].map(lookup)
        return frame.astype("float64")

    def lean_features(observation: dict) -> Any:
        return pd.DataFrame(encoder.encode_rows([observation]), columns=columns)

    def run(features: Callable[[dict], Any]) -> None:
        client = FakeKinesis()
        for record in event["Records"]:
            observation = json.loads(base64.b64decode(record["kinesis"]["data"]))
            p = float(bundle.booster.predict(features(observation), num_threads=1)[0])
            output = {
                "mushroom_id": observation["mushroom_id"],
                "verdict": "poisonous" if p >= bundle.threshold else "edible",
                "p_poisonous": round(p, 4),
                "input_sequence_number": record["kinesis"]["sequenceNumber"],
            }
            client.put_record(
                StreamName="mushroom-verdicts",
                Data=json.dumps(output).encode(),
                PartitionKey=observation["mushroom_id"],
            )

    results = {}
    for key, features in (
        ("per_record_pattern_1000_ms", pandas_features),
        ("per_record_lean_1000_ms", lean_features),
    ):
        run(features)  # warm-up
        results[key] = statistics.median(timed(lambda: run(features)) for _ in range(runs))
    return results


#: The function as issue 12 found it, before any compiled-predictor work: LightGBM, SciPy and
#: libgomp in the zip, boto3 from the runtime. Its cold start is the reference of the target.
BASELINE_COMMIT = "0f6f10b8c2568ef365009a9ab4ec74017e8b7e26"
BENCH_DIR = LOCAL_DIR / "bench"
PROBE = ROOT / "scripts" / "cold_start_probe.py"
#: Cold starts measured, each in its own package: directory, extra environment, the predictor
#: that must serve, top-level modules that must not load.
COLD_START_KINDS = ("baseline", "compiled", "lightgbm", "shadow")
COMPILED_PACKAGE_LACKS = ("lightgbm", "scipy")


def _complete(target: Path, build: Callable[[Path], None]) -> Path:
    """``target/package``, built by ``build(directory)`` once (a ``complete`` marker beside it)."""
    package, marker = target / "package", target / "complete"
    if marker.is_file() and package.is_dir():
        return package
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    build(package)
    marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
    return package


def current_package(flavour: str) -> Path:
    """This checkout's Lambda package of ``flavour``, unzipped (cached by its inputs' digest)."""
    from deployment import package_lambda

    key = package_lambda.inputs_digest(flavour)[:16]
    target = BENCH_DIR / "packages" / f"{flavour}-{key}"
    for stale in target.parent.glob(f"{flavour}-*"):
        if stale != target:
            shutil.rmtree(stale)  # built from inputs that changed since: one per flavour
    return _complete(target, lambda package: package_lambda.build_package_dir(package, flavour))


def baseline_package(commit: str = BASELINE_COMMIT) -> Path:
    """The package of ``commit``, built by that commit's own ``deployment/package_lambda.py``."""
    found = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True
    )
    if found.returncode != 0:
        raise SystemExit(
            f"cold start: the baseline commit {commit[:12]} (the Lambda package before the "
            "compiled predictor, issue 12) is not in this clone's history. Fetch it "
            f"(`git fetch --unshallow`, or `git fetch origin {commit}`) and run make bench again."
        )

    def build(package: Path) -> None:
        source, output = package.parent / "source", package.parent / "build"
        source.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", commit],
            capture_output=True,
            check=True,
        )
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(source, filter="data")
        print(f"cold start: building the baseline package of {commit[:12]} with its own builder")
        built = subprocess.run(
            [sys.executable, "-m", "deployment.package_lambda", "--output-dir", str(output)],
            cwd=source,
            env={**os.environ, "MUSHROOM_LOCAL_DIR": str(LOCAL_DIR)},  # its pip cache: ours
            capture_output=True,
            text=True,
        )
        if built.returncode != 0:
            raise SystemExit(
                f"cold start: the baseline package ({commit[:12]}) did not build:\n"
                f"{built.stderr[-3000:]}\nIts builder downloads cp312 manylinux wheels with "
                f"pip (PyPI, or the cache in {LOCAL_DIR / 'pip-cache'}): make PyPI reachable, "
                "then run make bench again."
            )
        (output / "lambda-staging").rename(package)
        shutil.rmtree(output)
        shutil.rmtree(source)

    return _complete(BENCH_DIR / "packages" / f"baseline-{commit[:12]}", build)


def runtime_sdk() -> Path:
    """What the python3.12 runtime adds to a zip: boto3, botocore and their dependencies, at
    this environment's versions, installed (with their bytecode, as in the runtime image)."""
    import importlib.metadata

    from deployment.package_lambda import install_wheels
    from emulation.lambda_runtime.sandbox import RUNTIME_DISTRIBUTIONS

    pins = [f"{name}=={importlib.metadata.version(name)}" for name in RUNTIME_DISTRIBUTIONS]
    key = hashlib.sha256(" ".join(pins).encode()).hexdigest()[:16]
    target = BENCH_DIR / "runtime" / key
    return _complete(target, lambda sdk: install_wheels(sdk, ["--no-deps", *pins], True))


def cold_start_packages(
    shadow_dir: Path,
) -> dict[str, tuple[Path, dict[str, str], str, tuple[str, ...]]]:
    """Build (or reuse) the three packages; fails naming the fix when one cannot be built.
    ``shadow``: the default package with a second bundle (``SHADOW_BUNDLE_URI``)."""
    compiled = current_package("compiled")
    return {
        "baseline": (baseline_package(), {}, "lightgbm", ()),
        "compiled": (compiled, {}, "compiled", COMPILED_PACKAGE_LACKS),
        "lightgbm": (current_package("lightgbm"), {"SCORER_PREDICTOR": "lightgbm"}, "lightgbm", ()),
        "shadow": (
            compiled,
            {"SHADOW_BUNDLE_URI": str(shadow_dir)},
            "compiled",
            COMPILED_PACKAGE_LACKS,
        ),
    }


def _tree_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def bench_cold_start(bundle_dir: Path, record: dict, runs: int, shadow_dir: Path) -> dict[str, Any]:
    """New processes: import the handler, load the bundle, score one record (medians).

    Each runs ``scripts/cold_start_probe.py`` isolated from this environment (``-I -S``):
    ``sys.path`` = its unzipped package, then the runtime's SDK (``runtime_sdk``); ``-B``, as
    /var/task is read-only (no bytecode written between runs). The kinds alternate (in a
    rotating order) so that all see the same machine load.
    """
    packages = cold_start_packages(shadow_dir)
    sdk = runtime_sdk()
    event = kinesis_event([record])
    results: dict[str, list[dict]] = {name: [] for name in COLD_START_KINDS}
    for run in range(runs):
        shift = run % len(COLD_START_KINDS)
        for name in COLD_START_KINDS[shift:] + COLD_START_KINDS[:shift]:
            package, extra_env, _, absent = packages[name]
            spec = {"paths": [str(package), str(sdk)], "event": event, "absent": list(absent)}
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "LANG": "C.UTF-8",
                "LAMBDA_TASK_ROOT": str(package),
                "LD_LIBRARY_PATH": f"{package}:{package / 'lib'}",  # as Lambda: /var/task/lib
                **_lambda_environment(bundle_dir),
                **extra_env,
            }
            started = time.perf_counter()
            completed = subprocess.run(
                [sys.executable, "-I", "-S", "-B", str(PROBE), json.dumps(spec)],
                cwd=package,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            process_ms = (time.perf_counter() - started) * 1000
            if completed.returncode != 0:
                raise SystemExit(f"cold start run ({name}) failed:\n{completed.stderr[-5000:]}")
            line = next(x for x in completed.stdout.splitlines() if x.startswith("COLD "))
            results[name].append({**json.loads(line[len("COLD ") :]), "process_ms": process_ms})
    report: dict[str, Any] = {"cold_start_baseline_commit": BASELINE_COMMIT}
    for name in COLD_START_KINDS:
        package, _, predictor, _ = packages[name]
        runs_of = results[name]
        served = {r["predictor"] for r in runs_of}
        if served != {predictor}:
            raise SystemExit(f"cold start {name!r} was served by {sorted(served)}")
        shadows = {r.get("shadow") for r in runs_of}
        wanted_shadow = {"loaded"} if name == "shadow" else {None}
        if shadows != wanted_shadow:
            raise SystemExit(f"cold start {name!r}: shadow {sorted(map(str, shadows))}")
        leaked = sorted({m for r in runs_of for m in r["leaked"] + r["present"]})
        if leaked:
            raise SystemExit(
                f"cold start {name!r} loaded modules from outside its package, the runtime's "
                f"SDK and the standard library, or modules its package lacks: {leaked}"
            )
        suffix = "" if name == "compiled" else f"_{name}"
        medians = {
            key: statistics.median(r[key] for r in runs_of)
            for key in ("import_ms", "load_ms", "first_invocation_ms", "total_ms", "process_ms")
        }
        report[f"cold_start{suffix}_ms"] = medians["total_ms"]
        report[f"cold_start{suffix}_breakdown_ms"] = {
            k: v for k, v in medians.items() if k not in ("total_ms", "process_ms")
        }
        report[f"cold_start{suffix}_process_ms"] = medians["process_ms"]
        report[f"cold_start{suffix}_package"] = {
            "directory": str(package),
            "unzipped_mb": round(_tree_mb(package), 1),
            "modules_loaded": runs_of[0]["modules"],
            "botocore": runs_of[0]["botocore"],
        }

    def paired(other: str) -> float:
        pairs = zip(results["compiled"], results[other])
        return statistics.median(c["total_ms"] / o["total_ms"] for c, o in pairs)

    report["cold_start_vs_baseline_ratio"] = paired("baseline")
    report["cold_start_vs_lightgbm_ratio"] = paired("lightgbm")
    report["cold_start_shadow_vs_compiled_ratio"] = statistics.median(
        s["total_ms"] / c["total_ms"] for s, c in zip(results["shadow"], results["compiled"])
    )
    return report


def check_targets(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    checks = {}
    for key, (op, limit) in TARGETS.items():
        value = report[key]
        checks[key] = {
            "target": f"{op} {limit:g}",
            "value": round(value, 3),
            "met": value <= limit if op == "<=" else value >= limit,
        }
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the scorer")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--shadow-bundle",
        type=Path,
        default=None,
        help="the shadow's bundle (default: a copy of --bundle under another model version)",
    )
    parser.add_argument("--runs", type=int, default=31, help="handler/raw runs (>= 5)")
    parser.add_argument("--slow-runs", type=int, default=5, help="per-record and cold-start runs")
    parser.add_argument(
        "--cold-start-only", action="store_true", help="only the cold starts (print, no report)"
    )
    args = parser.parse_args(argv)
    if not (args.bundle / "bundle.json").is_file():
        raise SystemExit(
            f"model bundle not found at {args.bundle}: run `make train` first "
            "(or pass --bundle PATH)"
        )
    runs, slow_runs = max(5, args.runs), max(5, args.slow_runs)
    import lightgbm
    import msgspec
    import numpy

    records, source = sample_records()
    shadow_dir = shadow_bundle(args.bundle, args.shadow_bundle)
    if args.cold_start_only:
        load_before = os.getloadavg()
        cold = bench_cold_start(args.bundle, records[0], slow_runs, shadow_dir)
        print(json.dumps(cold, indent=2))
        print(f"load average {load_before} -> {os.getloadavg()}")
        return 0
    event = kinesis_event(records)
    load_before = os.getloadavg()
    report: dict[str, Any] = {
        "records": N_RECORDS,
        "records_source": source,
        "bundle": str(args.bundle),
        "runs": runs,
        "slow_runs": slow_runs,
    }
    report["shadow_bundle"] = str(shadow_dir)
    report.update(bench_handler_and_raw(args.bundle, event, runs, shadow_dir))
    report.update(bench_per_record(args.bundle, event, slow_runs))
    report["speedup_vs_per_record"] = (
        report["per_record_pattern_1000_ms"] / report["handler_1000_ms"]
    )
    report["speedup_vs_per_record_lean"] = (
        report["per_record_lean_1000_ms"] / report["handler_1000_ms"]
    )
    report.update(bench_cold_start(args.bundle, records[0], slow_runs, shadow_dir))
    report["targets"] = check_targets(report)
    report["environment"] = {
        "python": platform.python_version(),
        "lightgbm": lightgbm.__version__,
        "numpy": numpy.__version__,
        "msgspec": msgspec.__version__,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "machine": platform.machine(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    for key in (
        "handler_1000_ms",
        "handler_without_misread_1000_ms",
        "misread_check_1000_ms",
        "handler_with_shadow_1000_ms",
        "handler_with_shadow_1000_cpu_ms",
        "shadow_vs_handler_cpu_ratio",
        "raw_predict_1000_ms",
        "handler_1000_cpu_ms",
        "raw_predict_1000_cpu_ms",
        "handler_vs_raw_cpu_ratio",
        "compiled_predict_1000_ms",
        "bundle_score_1000_ms",
        "per_record_pattern_1000_ms",
        "per_record_lean_1000_ms",
        "cold_start_ms",
        "cold_start_baseline_ms",
        "cold_start_lightgbm_ms",
        "cold_start_shadow_ms",
        "cold_start_shadow_vs_compiled_ratio",
    ):
        print(f"{key:28s} {report[key]:10.3f}")
    print(
        "handler stages (CPU ms): "
        + ", ".join(f"{k} {v:.3f}" for k, v in report["handler_stages_cpu_ms"].items())
        + f"; scorer {report['scorer']}, misread check {report['misread']} (paths laid out "
        + f"{report['misread_layout']}, the shadow's {report['shadow_misread_layout']}; leaves: "
        + f"{report['misread_leaves']}, the shadow's {report['shadow_misread_leaves']})"
    )
    for key, check in report["targets"].items():
        print(f"{key:28s} {check['value']:10.3f}  target {check['target']:8s} met={check['met']}")
    print(
        f"model trees {report['model_trees']}, predictor {report['predictor']}, load average "
        f"{report['environment']['load_average_before']} -> "
        f"{report['environment']['load_average_after']}, wrote {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
