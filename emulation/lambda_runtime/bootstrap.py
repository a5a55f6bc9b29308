"""Worker process: plays the Lambda Python runtime for one warm execution environment.

Started by ``sandbox.LambdaWorker`` as ``python -I -S bootstrap.py``; standard library only, it
never imports the ``scripts`` package. Before it imports the handler it builds the runtime's
``sys.path`` (task root, standard library, the runtime's SDK directory), limits the address
space (RLIMIT_AS backstop; the sandbox enforces MemorySize on the peak RSS), makes the task
root read-only for a root worker too (drops the capabilities that bypass file modes), and
installs the execution role's IAM check (``iam_policy.py``, loaded by path).

Protocol: one JSON object per line on the original stdin/stdout (duplicated to private
descriptors); the handler's own stdout goes to stderr, i.e. the log.

Lines out: ``{"type": "ready", "init_ms": ...}`` or ``{"type": "init_error", "error": {...}}``
once, then per request ``{"id": ..., "ok": true, "result": ...}`` or ``{"id": ..., "ok": false,
"error": {...}}``. Lines in: ``{"id", "event", "deadline_ms", "invoked_function_arn",
"trace_id"}``.
"""

import ctypes
import decimal
import importlib
import importlib.util
import json
import os
import resource
import sys
import time
import traceback

#: Capabilities that let root ignore file modes: CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
#: CAP_FOWNER. Lambda runs functions as an unprivileged user.
_FILE_MODE_CAPABILITIES = (1, 2, 3)


class LambdaContext:
    """Same attribute names and types as awslambdaric's context (memory_limit_in_mb is a str)."""

    def __init__(self, request_id, invoked_function_arn, deadline_ms):
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.client_context = None
        self.identity = None
        self.tenant_id = None
        self._epoch_deadline_time_in_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        remaining = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id={0},log_group_name={1},log_stream_name={2},"
            "function_name={3},memory_limit_in_mb={4},function_version={5},"
            "invoked_function_arn={6}])"
        ).format(
            self.aws_request_id,
            self.log_group_name,
            self.log_stream_name,
            self.function_name,
            self.memory_limit_in_mb,
            self.function_version,
            self.invoked_function_arn,
        )


def _json_default(obj):
    # awslambdaric's marshaller turns Decimal into a JSON number.
    if isinstance(obj, decimal.Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _error(exc, error_type=None, message=None, request_id=None):
    stack = traceback.format_list(traceback.extract_tb(exc.__traceback__)) if exc else []
    error = {
        "errorMessage": message if message is not None else str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": stack,
    }
    if request_id:
        error["requestId"] = request_id
    return error


def _log_error(error):
    # Lambda's runtime logs an unhandled error like this before returning it.
    sys.stderr.write("[ERROR] {}: {}\n".format(error["errorType"], error["errorMessage"]))
    sys.stderr.write("Traceback (most recent call last):\n" + "".join(error["stackTrace"]))
    sys.stderr.flush()


def _load_handler(spec):
    """Import the handler like awslambdaric: 'pkg.module.function' (or 'path/module.function')."""
    try:
        modname, fname = spec.rsplit(".", 1)
    except ValueError as exc:
        raise _InitError(
            _error(exc, "Runtime.MalformedHandlerName", f"Bad handler '{spec}': {exc}")
        )
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as exc:
        raise _InitError(
            _error(exc, "Runtime.ImportModuleError", f"Unable to import module '{modname}': {exc}")
        )
    except SyntaxError as exc:
        raise _InitError(
            _error(exc, "Runtime.UserCodeSyntaxError", f"Syntax error in module '{modname}': {exc}")
        )
    except Exception as exc:  # an exception raised by module-level code during init
        raise _InitError(_error(exc))
    handler = getattr(module, fname, None)
    if handler is None:
        raise _InitError(
            {
                "errorMessage": f"Handler '{fname}' missing on module '{modname}'",
                "errorType": "Runtime.HandlerNotFound",
                "stackTrace": [],
            }
        )
    return handler


def _prepare_environment(task_root):
    """sys.path, address-space limit, read-only task root and IAM check, as on Lambda."""
    runtime_path = os.environ.pop("_LOCAL_LAMBDA_RUNTIME_PATH", None)
    iam = json.loads(os.environ.pop("_LOCAL_LAMBDA_IAM", "null") or "null")
    limit_mb = os.environ.pop("_LOCAL_LAMBDA_AS_LIMIT_MB", None)
    if runtime_path is not None:
        # python3.12 on Lambda: /var/task, the standard library, then the runtime's boto3.
        stdlib = [p for p in sys.path if p and "site-packages" not in p]
        sys.path[:] = [task_root] + stdlib + [p for p in runtime_path.split(os.pathsep) if p]
    else:
        sys.path.insert(0, task_root)  # /var/task comes first, before the runtime's boto3
    if limit_mb:
        limit = int(limit_mb) << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if os.geteuid() == 0:
        _drop_file_mode_capabilities()
    if iam is None:
        raise _InitError(
            {
                "errorMessage": "no execution role policies given: refusing to run unchecked",
                "errorType": "Runtime.LocalIamUnavailable",
                "stackTrace": [],
            }
        )
    guard_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "iam_policy.py")
    spec = importlib.util.spec_from_file_location("_local_lambda_iam_policy", guard_path)
    guard = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(guard)
    try:
        guard.install_guard(iam["principal"], iam["statements"])
    except ImportError:
        pass  # no botocore on sys.path: the function cannot call AWS through the SDK


def _drop_file_mode_capabilities():
    """capset(2) without the capabilities that bypass file modes (root stays uid 0)."""

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]

    libc = ctypes.CDLL(None, use_errno=True)
    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    mask = ~sum(1 << bit for bit in _FILE_MODE_CAPABILITIES) & 0xFFFFFFFF
    data[0].effective &= mask
    data[0].permitted &= mask
    data[0].inheritable &= mask
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


class _InitError(Exception):
    def __init__(self, error):
        super().__init__(error["errorMessage"])
        self.error = error


def main():
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # print() in the handler goes to the log, not into the protocol

    def send(message):
        proto_out.write(
            json.dumps(message, separators=(",", ":"), default=_json_default).encode() + b"\n"
        )
        proto_out.flush()

    task_root = os.environ["LAMBDA_TASK_ROOT"]
    os.chdir(task_root)

    started = time.perf_counter()
    try:
        _prepare_environment(task_root)
        handler = _load_handler(os.environ["_HANDLER"])
    except _InitError as exc:
        _log_error(exc.error)
        send({"type": "init_error", "error": exc.error})
        return 1
    except Exception as exc:  # the sandbox itself could not be set up: fail closed
        error = _error(exc, "Runtime.LocalSandboxError")
        _log_error(error)
        send({"type": "init_error", "error": error})
        return 1
    send({"type": "ready", "init_ms": (time.perf_counter() - started) * 1000.0})

    for line in proto_in:
        request = json.loads(line)
        request_id = request["id"]
        os.environ["_X_AMZN_TRACE_ID"] = request.get("trace_id", "")
        context = LambdaContext(request_id, request["invoked_function_arn"], request["deadline_ms"])
        try:
            result = handler(request["event"], context)
        except MemoryError as exc:  # RLIMIT_AS reached: on Lambda the sandbox is killed
            error = _error(exc, "Runtime.OutOfMemory", "Runtime exited: out of memory", request_id)
            _log_error(error)
            send({"id": request_id, "ok": False, "error": error})
            os._exit(137)
        except Exception as exc:
            error = _error(exc, request_id=request_id)
            _log_error(error)
            send({"id": request_id, "ok": False, "error": error})
            continue
        try:
            send({"id": request_id, "ok": True, "result": result})
        except (TypeError, ValueError) as exc:
            error = _error(
                exc, "Runtime.MarshalError", f"Unable to marshal response: {exc}", request_id
            )
            _log_error(error)
            send({"id": request_id, "ok": False, "error": error})
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
