"""Lambda entry point: ``lambda_function.handler.lambda_handler``.

Settings, the model bundle and the Kinesis client are built once per container, on the first
invocation (``get_service``), and kept; a bad setting or a missing bundle fails that invocation
with a clear message (logged as structured JSON) and is retried on the next one. Everything
else lives in ``service`` (the domain) and ``batch`` (Powertools glue).
"""

from __future__ import annotations

import functools
import gc
import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from lambda_function import aws, config
from lambda_function.batch import process_event
from lambda_function.bundle_store import load_bundle
from lambda_function.service import ScoringService
from lambda_function.shadow import Shadow
from lambda_function.writer import KinesisOutputWriter

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or config.SERVICE_NAME)
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or config.METRICS_NAMESPACE
)


@functools.cache
def get_service() -> ScoringService:
    """The container's scoring service: settings, bundle, shadow (if any) and output writer,
    built once. A shadow that fails to load is logged and reported on every record; the served
    bundle failing to load fails the invocation (fail closed)."""
    settings = config.Settings.from_env()
    bundle = load_bundle(
        settings.model_bundle_uri, settings.bundle_cache_dir, predictor=settings.predictor
    )
    shadow = None
    if settings.shadow is not None:
        shadow = Shadow.load(settings.shadow, settings.bundle_cache_dir, settings.predictor)
        if shadow.error is not None:
            logger.error(
                "shadow bundle not loaded: serving without it, every scored record reports it",
                extra={"shadow_bundle_uri": settings.shadow.uri, **shadow.describe()},
            )
    writer = KinesisOutputWriter(
        aws.client("kinesis"),
        settings.output_stream_name,
        max_attempts=settings.output_max_attempts,
        backoff_base_s=settings.output_backoff_base_s,
        backoff_max_s=settings.output_backoff_max_s,
    )
    logger.info(
        f"model bundle loaded: scoring with the {bundle.predictor.kind} predictor",
        extra={
            "model_bundle_uri": settings.model_bundle_uri,
            "model_name": bundle.model_name,
            "model_version": bundle.model_version,
            "trees": bundle.n_trees,
            # Which code scores: "compiled" (predictor-<platform>.so) or "lightgbm".
            "predictor": bundle.predictor.kind,
            "predictor_fallback_reason": getattr(bundle.predictor, "fallback_reason", None),
            # Which code applies the guard and threshold: "native" (the compiled predictor's
            # scorer) or "python" (numpy). Records are always decoded and encoded by msgspec.
            "scorer": "native" if bundle.scorer is not None else "python",
            "scorer_unavailable_reason": bundle.scorer_unavailable_reason,
            **({"shadow_bundle_uri": settings.shadow.uri} if settings.shadow else {}),
            **(shadow.describe() if shadow is not None else {}),
        },
    )
    # Move everything allocated so far (modules, model, clients: ~150,000 objects) out of the
    # garbage collector's reach: it never frees any of it, and a full collection triggered by
    # a batch's allocations would otherwise traverse it all (several ms on a 1,000-record batch).
    gc.freeze()
    return ScoringService(bundle, writer, shadow=shadow)


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Score a Kinesis batch; returns ``{"batchItemFailures": [...]}``."""
    try:
        return process_event(event, context, get_service(), metrics, logger)
    except Exception:
        # Bad input never gets here (it is rejected per record); this is a fault of the
        # container (settings, bundle) or of the code. Logged as one JSON record with the
        # traceback and the Lambda context, then raised so that Lambda retries the batch.
        records = event.get("Records") if isinstance(event, dict) else None
        logger.exception(
            "batch failed; Lambda will retry it",
            extra={"records": len(records) if isinstance(records, list) else None},
        )
        raise
