"""The monitoring CLI (``make monitor`` = ``python -m orchestration.monitor``): one cycle, wired.

The composition root of the closed loop: real adapters from the settings (``monitoring.aws``),
retraining (``training.pipeline``), the promotion gate's result rolled out, MLflow run tags.
The cycle itself (``monitoring.cycle``) only sees its ports.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from datetime import timedelta
from typing import Any, Mapping, Sequence

import pandas as pd

from config.settings import Settings
from monitoring.config import LEASE_KEY, STATE_KEY, resolve_evaluation_mode
from monitoring.cycle import PublishFailed, run_exclusive
from monitoring.lease import EXIT_LEASE_HELD, CycleLease, LeaseHeld
from monitoring.outputs import describe
from monitoring.ports import CycleDeps, JsonStore
from monitoring.respond import Deploy, Retrain, TagRun
from monitoring.state import StateConflict
from monitoring.workspace import EvidentlyWorkspace


def default_retrain(settings: Any) -> Retrain:
    """``training.pipeline.run_training`` bound to the settings (imported when called)."""

    def retrain(**kwargs: Any) -> Any:
        from training.pipeline import run_training  # noqa: PLC0415 - heavy, only on ALARM

        return run_training(settings, **kwargs)

    return retrain


def default_deploy(version: str, settings: Settings | None = None) -> None:
    """Serve the registry's champion, which the gate has just made ``version``.

    ``orchestration.rollout.roll_out_model``: the champion's bundle to S3, a published Lambda
    version, the alias ``live`` moved to it; no Terraform. The stack is the one of
    ``settings.local_dir`` (``MUSHROOM_LOCAL_DIR``). Raises when what got served is not
    ``version`` (the champion moved in between): the cycle records that as a failure instead of
    claiming a deployment.
    """
    from orchestration.rollout import connect, roll_out_model  # noqa: PLC0415 - on promotion

    settings = settings or Settings.from_env()
    result = roll_out_model(connect(local_dir=settings.local_dir))
    if result.served.model_version != str(version):
        raise RuntimeError(
            f"served model version {result.served.model_version or 'none'} instead of "
            f"{version}: the registry's champion is not the version this cycle promoted"
        )


def mlflow_tagger(settings: Any) -> TagRun:
    def tag(run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow import MlflowClient  # noqa: PLC0415

        client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
        for key, value in tags.items():
            client.set_tag(run_id, key, value)

    return tag


def build_deps(
    settings: Settings | None = None,
    retrain: Retrain | None = None,
    deploy: Deploy | None = None,
) -> CycleDeps:
    """Wire the real adapters from the settings (default: read from the environment once)."""
    from monitoring import aws  # noqa: PLC0415 - boto3 only when wiring the real thing
    from monitoring.drift import load_reference  # noqa: PLC0415

    settings = settings or Settings.from_env()
    config = settings.monitoring
    if config is None:
        raise ValueError("settings without monitoring settings: build them with Settings.from_env")
    use_s3 = config.state_store == "s3"
    store: JsonStore = (
        aws.S3JsonStore(settings.data_bucket, STATE_KEY)
        if use_s3
        else aws.LocalJsonStore(config.local_state_path)
    )
    lease_store = (
        aws.S3JsonStore(settings.data_bucket, LEASE_KEY)
        if use_s3
        else aws.LocalJsonStore(
            config.local_lease_path or config.local_state_path.with_name("lease.json")
        )
    )
    sns = aws.Sns(config.topic_arn, config.topic_name)

    @functools.lru_cache(maxsize=1)
    def reference() -> pd.DataFrame:
        def dataset() -> pd.DataFrame:
            from training.data import load_dataset  # noqa: PLC0415

            return load_dataset(settings)

        return load_reference(
            config.reference_path, config.reference_sample, settings.seed, load_dataset=dataset
        )

    return CycleDeps(
        config=config,
        verdicts=aws.KinesisStreamReader(settings.output_stream_name),
        observations=(
            aws.KinesisStreamReader(settings.input_stream_name)
            if config.read_observations
            else None
        ),
        state_store=store,
        objects=aws.S3Objects(settings.data_bucket) if settings.aws_configured else None,
        cloudwatch=aws.CloudWatch(),
        notify=sns.publish,
        retrain=retrain or default_retrain(settings),
        deploy=deploy or functools.partial(default_deploy, settings=settings),
        evaluation_mode=resolve_evaluation_mode(
            config.alarm_evaluation, config.aws_target, settings.aws_endpoint_url
        ),
        reference=reference,
        tag_run=mlflow_tagger(settings),
        lease=CycleLease(lease_store, timedelta(seconds=config.lease_ttl_seconds)),
        workspace=EvidentlyWorkspace(config.workspace_dir) if config.workspace_dir else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.monitor", description=__doc__)
    parser.add_argument("--window", help="window name (default: the UTC timestamp)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)  # "Found credentials ..." per client
    deps = build_deps()
    where = "here (CloudWatch semantics)" if deps.evaluation_mode == "local" else "by the service"
    print(f"monitoring cycle: alarms evaluated {where}; state in {deps.state_store.location}")
    try:
        result = run_exclusive(deps, window=args.window)
    except LeaseHeld as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_LEASE_HELD
    except (StateConflict, PublishFailed) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(describe(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
