"""Worker process: plays the Lambda Python runtime for one warm execution environment.

Started by ``sandbox.LambdaWorker`` as ``python -I bootstrap.py``; standard library only, it never
imports the ``scripts`` package. Protocol: one JSON object per line on the original stdin/stdout
(duplicated to private descriptors); the handler's own stdout goes to stderr, i.e. the log.

Lines out: ``{"type": "ready", "init_ms": ...}`` or ``{"type": "init_error", "error": {...}}``
once, then per request ``{"id": ..., "ok": true, "result": ...}`` or ``{"id": ..., "ok": false,
"error": {...}}``. Lines in: ``{"id", "event", "deadline_ms", "invoked_function_arn",
"trace_id"}``.
"""

import decimal
import importlib
import json
import os
import sys
import time
import traceback


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
    # /var/task comes first on Lambda's sys.path, before the runtime's boto3.
    sys.path.insert(0, task_root)
    os.chdir(task_root)

    started = time.perf_counter()
    try:
        handler = _load_handler(os.environ["_HANDLER"])
    except _InitError as exc:
        _log_error(exc.error)
        send({"type": "init_error", "error": exc.error})
        return 1
    send({"type": "ready", "init_ms": (time.perf_counter() - started) * 1000.0})

    for line in proto_in:
        request = json.loads(line)
        request_id = request["id"]
        os.environ["_X_AMZN_TRACE_ID"] = request.get("trace_id", "")
        context = LambdaContext(request_id, request["invoked_function_arn"], request["deadline_ms"])
        try:
            result = handler(request["event"], context)
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
