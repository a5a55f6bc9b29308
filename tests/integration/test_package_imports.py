"""The real Lambda zip imports with only its own contents and what the python3.12 runtime has.

The handler is imported by the local runtime's worker (``python -I -S``, sys.path = package,
stdlib, the runtime's SDK; LD_LIBRARY_PATH = the package and its lib/). Every shared object the
first invocation maps beyond what a bare runtime maps must come from the package, except the
bundle's compiled predictor, loaded from a sealed memory file. The default (compiled) package
has no LightGBM, SciPy or libgomp, and scores with the compiled predictor.
"""

from __future__ import annotations

import sysconfig
import zipfile
from pathlib import Path

import pytest

from deployment.elf_audit import RUNTIME_LIBRARIES, read_elf
from deployment.package_lambda import LIBGOMP_NAME
from emulation.lambda_runtime import aws
from emulation.lambda_runtime.model import ExecutionIdentity, FunctionConfig
from emulation.lambda_runtime.sandbox import LambdaWorker
from lambda_function.compiled import platform_tag, predictor_file_name

pytestmark = pytest.mark.integration

IDENTITY = ExecutionIdentity(
    credentials={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
    principal_arn="arn:aws:sts::123456789012:assumed-role/r/mushroom-scorer",
    statements=(),  # no permissions: importing needs none
)


def _config(handler: str, environment: dict[str, str] | None = None) -> FunctionConfig:
    return FunctionConfig(
        name="mushroom-scorer",
        arn="arn:aws:lambda:us-east-1:123456789012:function:mushroom-scorer",
        handler=handler,
        runtime="python3.12",
        timeout_s=30,
        memory_mb=1024,  # terraform/vars/local.tfvars
        package_type="Zip",
        code_sha256="",
        role="arn:aws:iam::123456789012:role/r",
        environment={"POWERTOOLS_METRICS_NAMESPACE": "MushroomClassifier", **(environment or {})},
    )


def _mapped_objects(worker: LambdaWorker, event: dict) -> tuple[dict, set[str]]:
    """Invoke once (cold start imports the handler); the shared objects the worker maps."""
    outcome = worker.invoke(event)
    assert worker._proc is not None and worker._proc.poll() is None, outcome.payload
    maps = Path(f"/proc/{worker._proc.pid}/maps").read_text().splitlines()
    paths = {line.split(None, 5)[5] for line in maps if len(line.split(None, 5)) == 6}
    return outcome.payload, {p for p in paths if ".so" in Path(p).name}


def test_the_zip_imports_with_its_own_libraries_and_the_runtimes_only(
    lambda_zip, tmp_path, tiny_compiled_bundle
):
    root = tmp_path / "task"
    with zipfile.ZipFile(lambda_zip) as archive:
        names = archive.namelist()
        archive.extractall(root)
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"lightgbm", "scipy", "scipy.libs"} and f"lib/{LIBGOMP_NAME}" not in names
    (root / "probe.py").write_text("import boto3\n\ndef handle(event, context):\n    return 1\n")
    aws.make_read_only(root)
    state = tmp_path / "state"

    with LambdaWorker(_config("probe.handle"), root, identity=IDENTITY, state_dir=state) as w:
        assert w.invoke({}).payload == 1
        _, baseline = _mapped_objects(w, {})

    handler = "lambda_function.handler.lambda_handler"
    environment = {
        "MODEL_BUNDLE_URI": str(tiny_compiled_bundle),
        "OUTPUT_STREAM_NAME": "mushroom-verdicts",
    }
    config = _config(handler, environment)
    with LambdaWorker(config, root, identity=IDENTITY, state_dir=state) as w:
        # An empty batch: the cold start loads the bundle (and its compiled predictor), then
        # Powertools refuses the event; nothing is written, nothing reaches the network.
        payload, mapped = _mapped_objects(w, {"Records": []})
    assert payload.get("errorType") == "UnexpectedBatchTypeError", payload
    predictor = predictor_file_name(platform_tag())
    assert f"/memfd:{predictor} (deleted)" in mapped  # the verified bytes, not a path
    added = {p for p in mapped - baseline if not p.startswith("/memfd:")}
    assert added, "the handler's import mapped no shared object at all"
    stdlib = Path(sysconfig.get_paths()["stdlib"])  # the worker runs this same interpreter
    outside = sorted(
        p
        for p in added
        if not Path(p).is_relative_to(root)
        and not Path(p).is_relative_to(stdlib)
        and read_elf(Path(p).read_bytes()).soname not in RUNTIME_LIBRARIES
    )
    assert outside == [], "loaded from outside the package and the runtime: " + ", ".join(outside)
    unwanted = [root / "lightgbm", root / "scipy", root / "scipy.libs"]
    assert not [
        p for p in added if "libgomp" in p or any(Path(p).is_relative_to(u) for u in unwanted)
    ], added
