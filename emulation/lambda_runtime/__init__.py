"""Local Lambda runtime: runs the deployed function like the Lambda service, for emulators
(moto) that store functions and event source mappings but cannot run code.

On LocalStack with Docker, or on AWS, the real service polls the stream and invokes the
function; this runtime is not started there.
"""

from emulation.lambda_runtime.runtime import (
    DEFAULT_FUNCTION,
    LocalFunction,
    RunStats,
    invoke,
    run,
    run_until_idle,
)

__all__ = ["DEFAULT_FUNCTION", "LocalFunction", "RunStats", "invoke", "run", "run_until_idle"]
