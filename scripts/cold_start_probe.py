"""One Lambda cold start, run by ``scripts/bench.py`` as ``python -I -S cold_start_probe.py SPEC``.

Isolated (``-I -S``): no site-packages, no ``PYTHON*`` variables, not even this directory on
``sys.path``; only the standard library and the directories of ``SPEC`` (JSON: ``paths``, the
Lambda package directory first and the runtime's boto3/botocore after it, as in
``/var/task`` and the runtime's ``site-packages``; ``event``; ``absent``, top-level modules
the package must not load). Prints one ``COLD {...}`` line: import, load and first-invocation
times, the predictor that scored, the botocore that served, and every loaded module whose file
lies outside those directories and the standard library (``leaked``).

Version-agnostic: it only calls ``lambda_function.handler.get_service`` and ``lambda_handler``,
which every version of the function has. No network: ``botocore.endpoint.Endpoint._send`` is
replaced as soon as botocore loads it (whoever creates the client, boto3 or botocore), and
answers Kinesis PutRecords; any other request fails the run.
"""

import time

started = time.perf_counter()
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from importlib.machinery import PathFinder  # noqa: E402

spec = json.loads(sys.argv[1])
sys.path[:0] = spec["paths"]
PUT_RECORDS = "Kinesis_20131202.PutRecords"


class _Body:
    def __init__(self, data):
        self.data = data

    def stream(self, **_):
        yield self.data


def _send(self, request):
    """Answer PutRecords after serialisation and signing, where HTTP would start."""
    from botocore.awsrequest import AWSResponse

    target = request.headers.get("X-Amz-Target", b"")
    target = target.decode() if isinstance(target, bytes) else target
    if target != PUT_RECORDS:
        raise RuntimeError(f"the cold-start probe answers only {PUT_RECORDS}: {request.url}")
    n = len(json.loads(request.body)["Records"])
    records = [{"SequenceNumber": str(i), "ShardId": "shardId-000000000000"} for i in range(n)]
    body = json.dumps({"FailedRecordCount": 0, "Records": records}).encode()
    return AWSResponse(request.url, 200, {}, _Body(body))


class _PatchEndpoint:
    """Meta-path finder: patches ``botocore.endpoint`` right after it executes."""

    def find_spec(self, name, path=None, target=None):
        if name != "botocore.endpoint":
            return None
        found = PathFinder.find_spec(name, path)
        execute = found.loader.exec_module

        def exec_module(module):
            execute(module)
            module.Endpoint._send = _send

        found.loader.exec_module = exec_module
        return found


sys.meta_path.insert(0, _PatchEndpoint())

from lambda_function import handler  # noqa: E402

imported = time.perf_counter()
service = handler.get_service()
loaded = time.perf_counter()
context = type(
    "Context",
    (),
    {
        "function_name": "mushroom-scorer",
        "function_version": "$LATEST",
        "memory_limit_in_mb": 1024,
        "aws_request_id": "cold",
        "log_group_name": "/aws/lambda/mushroom-scorer",
        "log_stream_name": "cold",
        "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:mushroom-scorer",
        "get_remaining_time_in_millis": lambda self: 60000,
    },
)()
response = handler.lambda_handler(spec["event"], context)
done = time.perf_counter()
assert response == {"batchItemFailures": []}, response

# Real paths: a symlink into a virtualenv counts as the virtualenv.
roots = [os.path.realpath(p) + "/" for p in spec["paths"]]
stdlib = os.path.realpath(os.path.dirname(os.__file__)) + "/"
leaked = []
for name, module in list(sys.modules.items()):
    file = getattr(module, "__file__", None)
    if not file or name in ("__main__", "__mp_main__"):  # this script, by either name
        continue
    file = os.path.realpath(file)
    own = any(file.startswith(root) for root in roots)
    runtime = file.startswith(stdlib) and "/site-packages/" not in file[len(stdlib) - 1 :]
    if not own and not runtime:
        leaked.append(f"{name} ({file})")
predictor = getattr(service.bundle, "predictor", None)  # versions before it: LightGBM only
shadow = getattr(service, "shadow", None)  # versions before it: none
print(
    "COLD "
    + json.dumps(
        {
            "predictor": getattr(predictor, "kind", "lightgbm"),
            "shadow": None if shadow is None else ("failed" if shadow.error else "loaded"),
            "botocore": sys.modules["botocore"].__file__,
            "import_ms": (imported - started) * 1000,
            "load_ms": (loaded - imported) * 1000,
            "first_invocation_ms": (done - loaded) * 1000,
            "total_ms": (done - started) * 1000,
            "leaked": sorted(leaked),
            "present": sorted(m for m in spec["absent"] if m in sys.modules),
            "modules": len(sys.modules),
        }
    )
)
