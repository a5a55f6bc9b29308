"""What the default package does for its cold start: bytecode, and a botocore pruned to the
services the function calls that resolves their endpoints exactly as the full one (no network)."""

from __future__ import annotations

import ast
import importlib.util
import json
import marshal
import shutil
import subprocess
import sys
from pathlib import Path

import botocore
import botocore.session
import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import Loader

from config.settings import REPO_ROOT
from deployment import package_lambda
from deployment.package_lambda import BOTOCORE_DATA as BOTOCORE_DATA_IN_PACKAGE
from deployment.package_lambda import (
    BOTOCORE_SERVICES,
    FLAVOUR_COMPILED,
    FLAVOUR_LIGHTGBM,
    LAMBDA_TASK_ROOT,
    PackageError,
    compile_bytecode,
    prune_botocore_data,
)

BOTOCORE_DATA = Path(botocore.__file__).parent / "data"
KEYS = {"aws_access_key_id": "k", "aws_secret_access_key": "s"}  # no credential chain lookup


def _module_tree(root: Path) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "mod.py").write_text("NAMES = ('a', 'b')\n\ndef f(x):\n    return x * 2\n")


def test_bytecode_is_unchecked_deterministic_and_names_the_lambda_path(tmp_path):
    pycs = []
    for name in ("one", "two"):
        _module_tree(tmp_path / name)
        assert compile_bytecode(tmp_path / name) == 2
        source = tmp_path / name / "pkg" / "mod.py"
        pycs.append(Path(importlib.util.cache_from_source(str(source))).read_bytes())
    assert pycs[0] == pycs[1]  # the same bytes wherever it is built
    assert pycs[0][:4] == importlib.util.MAGIC_NUMBER
    # Flags 0b01: hash-based, source not checked on import (no stat, no hashing).
    assert int.from_bytes(pycs[0][4:8], "little") == 0b01
    assert marshal.loads(pycs[0][16:]).co_filename == f"{LAMBDA_TASK_ROOT}/pkg/mod.py"


def _pycs(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.pyc"))}


def test_bytecode_does_not_depend_on_what_the_building_process_imported(tmp_path):
    """``make package`` compiles in a bare process, ``make demo``/``make deploy`` in one that
    imported botocore and the scorer: marshal's FLAG_REF follows reference counts, so compiling
    in the builder's own process wrote different bytes for some modules."""
    botocore_dir = Path(botocore.__file__).parent
    trees = {}
    for name in ("busy", "bare"):
        tree = tmp_path / name
        shutil.copytree(
            REPO_ROOT / "lambda_function",
            tree / "lambda_function",
            ignore=shutil.ignore_patterns("__pycache__", "native"),
        )
        shutil.copytree(
            botocore_dir, tree / "botocore", ignore=shutil.ignore_patterns("__pycache__", "data")
        )
        trees[name] = tree
    # This process has imported the modules it compiles (as the demo has); the other has not.
    import lambda_function.handler  # noqa: F401, PLC0415
    import lambda_function.model  # noqa: F401, PLC0415

    compile_bytecode(trees["busy"])
    script = (
        "import sys; from pathlib import Path; "
        "from deployment.package_lambda import compile_bytecode; "
        "compile_bytecode(Path(sys.argv[1]))"
    )
    subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); {script}",
            str(trees["bare"]),
        ],
        check=True,
    )
    busy, bare = _pycs(trees["busy"]), _pycs(trees["bare"])
    assert len(busy) > 80 and busy.keys() == bare.keys()
    differing = sorted(name for name in busy if busy[name] != bare[name])
    assert differing == []


def test_a_module_that_does_not_compile_fails_the_build(tmp_path):
    _module_tree(tmp_path)
    (tmp_path / "pkg" / "broken.py").write_text("def f(:\n")
    with pytest.raises(PackageError, match="1 module.* do not compile: pkg/broken.py"):
        compile_bytecode(tmp_path)


def _clients_created(path: Path) -> set[str]:
    """Service names of every ``aws.client("...")`` / ``client("...")`` call in a module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func
            name = (
                function.attr
                if isinstance(function, ast.Attribute)
                else getattr(function, "id", "")
            )
            if name in ("client", "create_client"):
                names.add(node.args[0].value)
    return names


def test_the_package_keeps_the_services_the_function_calls():
    called = set().union(*map(_clients_created, (REPO_ROOT / "lambda_function").glob("*.py")))
    assert called == set(BOTOCORE_SERVICES)


@pytest.fixture(scope="module")
def pruned_data(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("botocore") / "data"
    shutil.copytree(BOTOCORE_DATA, data)
    assert prune_botocore_data(data) > 15_000_000  # of ~20 MB
    return data


def _session(monkeypatch, data: Path | None) -> botocore.session.Session:
    """A botocore session reading ``data`` as its own (built-in) data directory, as the
    package's botocore reads its pruned ``botocore/data``: botocore resolves some endpoints
    differently for data outside its own directory. ``None``: botocore's full data."""
    monkeypatch.setattr(Loader, "BUILTIN_DATA_PATH", str(data or BOTOCORE_DATA))
    monkeypatch.setattr(Loader, "CUSTOMER_DATA_PATH", str(data or BOTOCORE_DATA))  # ~/.aws/models
    session = botocore.session.Session()
    session.get_component("data_loader")  # created now, from the patched paths
    return session


class Sent(Exception):
    """Raised where botocore would send: carries the request's URL."""


def _stop(request, **_):
    raise Sent(request.url)


def _urls(session: botocore.session.Session, region: str, partition: str) -> dict[str, str]:
    """Where the function's calls would go in ``region`` (of ``partition``)."""
    urls = {}
    kinesis = session.create_client("kinesis", region_name=region, **KEYS)
    s3 = session.create_client("s3", region_name=region, **KEYS)
    calls = {
        "kinesis": (kinesis, "put_records", {"StreamName": "verdicts"}),
        "kinesis-arn": (
            kinesis,
            "put_records",
            {"StreamARN": f"arn:{partition}:kinesis:{region}:123456789012:stream/verdicts"},
        ),
        "s3": (s3, "get_object", {"Bucket": "models", "Key": "m/bundle.json"}),
    }
    for name, (client, operation, params) in calls.items():
        client.meta.events.register_first("before-send", _stop)
        if operation == "put_records":
            params = {**params, "Records": [{"Data": b"{}", "PartitionKey": "p"}]}
        with pytest.raises(Sent) as sent:
            getattr(client, operation)(**params)
        urls[name] = str(sent.value)
        urls[f"{name} endpoint"] = client.meta.endpoint_url
    return urls


def _regions() -> list[tuple[str, str]]:
    """(partition, region): us-east-1 (S3's global endpoint) and a region of every partition
    of botocore's endpoints.json (aws-cn, aws-us-gov, the ISO partitions, ...)."""
    endpoints = json.loads((BOTOCORE_DATA / "endpoints.json").read_text())
    return [("aws", "us-east-1")] + [
        (p["partition"], sorted(p["regions"])[-1]) for p in endpoints["partitions"]
    ]


def test_pruned_data_keeps_every_partition_and_only_the_services(pruned_data, monkeypatch):
    full = json.loads((BOTOCORE_DATA / "endpoints.json").read_text())
    pruned = json.loads((pruned_data / "endpoints.json").read_text())
    assert [p["partition"] for p in pruned["partitions"]] == [
        p["partition"] for p in full["partitions"]
    ]
    assert {"aws-cn", "aws-us-gov"} <= {p["partition"] for p in pruned["partitions"]}
    for before, after in zip(full["partitions"], pruned["partitions"]):
        kept = {k: v for k, v in before["services"].items() if k in BOTOCORE_SERVICES}
        assert after == {**before, "services": kept}
    services = sorted(p.name for p in pruned_data.iterdir() if p.is_dir())
    assert services == sorted(BOTOCORE_SERVICES)
    with pytest.raises(UnknownServiceError):
        _session(monkeypatch, pruned_data).create_client("sqs", region_name="us-east-1", **KEYS)


@pytest.mark.parametrize("partition, region", _regions())
def test_pruned_botocore_resolves_the_same_endpoints(pruned_data, partition, region, monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    pruned = _urls(_session(monkeypatch, pruned_data), region, partition)
    assert pruned == _urls(_session(monkeypatch, None), region, partition)


def test_pruned_botocore_still_honours_aws_endpoint_url(pruned_data, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:5000")
    urls = _urls(_session(monkeypatch, pruned_data), "eu-west-1", "aws")
    assert urls == _urls(_session(monkeypatch, None), "eu-west-1", "aws")
    assert urls["kinesis"] == "http://127.0.0.1:4566/"
    assert urls["s3 endpoint"] == "http://127.0.0.1:5000"


def test_pruning_refuses_a_botocore_without_the_services(tmp_path):
    (tmp_path / "kinesis").mkdir()
    with pytest.raises(PackageError, match="no data for s3"):
        prune_botocore_data(tmp_path)


def _fake_install(staging: Path, requirements: Path) -> None:
    """What pip would install, in small: a module and a botocore with three services."""
    (staging / "lib1").mkdir(parents=True)
    (staging / "lib1" / "__init__.py").write_text("VALUE = 1\n")
    data = staging / BOTOCORE_DATA_IN_PACKAGE
    for service in ("kinesis", "s3", "sqs"):
        (data / service / "2020-01-01").mkdir(parents=True)
        (data / service / "2020-01-01" / "service-2.json").write_text("{}")
    endpoints = {"partitions": [{"partition": "aws", "services": {"kinesis": {}, "sqs": {}}}]}
    (data / "endpoints.json").write_text(json.dumps(endpoints))


@pytest.mark.parametrize("flavour", [FLAVOUR_COMPILED, FLAVOUR_LIGHTGBM])
def test_only_the_compiled_flavour_gets_bytecode_and_a_pruned_botocore(
    tmp_path, monkeypatch, flavour
):
    monkeypatch.setattr(package_lambda, "install_requirements", _fake_install)
    monkeypatch.setattr(package_lambda, "bundle_libgomp", lambda staging: "sha")
    staging = tmp_path / "package"
    package_lambda.build_package_dir(staging, flavour)
    compiled = flavour == FLAVOUR_COMPILED
    pyc = Path(importlib.util.cache_from_source(str(staging / "lib1" / "__init__.py")))
    assert pyc.is_file() is compiled
    assert (staging / "lambda_function" / "__pycache__").is_dir() is compiled
    services = {p.name for p in (staging / BOTOCORE_DATA_IN_PACKAGE).iterdir() if p.is_dir()}
    assert services == ({"kinesis", "s3"} if compiled else {"kinesis", "s3", "sqs"})
