"""The whole Terraform stack against moto: apply, inspect through boto3, re-plan, destroy.

Uses its own moto server and state under a temporary directory, so a `make up` stack is never
touched. About 40 s for apply and 30 s for destroy as measured here, mostly provider polling.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
import botocore.exceptions
import pytest

from config.stack_env import EmulatorState, read_stack_env
from deployment.deploy import terraform_apply, terraform_destroy, terraform_plan
from deployment.rollout import BUNDLE_ENV, SHADOW_ENV, RolloutError, Target, rollback, rollout
from deployment.shadow import current_shadow, promote_shadow, start_shadow, stop_shadow
from emulation.emulator import start_emulator, stop_emulator
from emulation.firehose_pump import parse_delivery_stream
from lambda_function.model import ModelBundle
from lambda_function.schema import FEATURE_NAMES
from monitoring.metrics import DASHBOARD_FIGURES
from monitoring.shadow import DISAGREEMENT, MARKERS, ROLE_METRICS

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

MODEL_VERSION = "7"


def placeholder_zip(directory: Path) -> Path:
    """A minimal deployable package (the real one, ~57 MB, comes from deployment.package_lambda)."""
    path = directory / "mushroom-scorer-placeholder.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("lambda_function/__init__.py", "")
        archive.writestr(
            "lambda_function/handler.py",
            "def lambda_handler(event, context):\n    return {'batchItemFailures': []}\n",
        )
    return path


class Stack:
    """An applied stack: its outputs and boto3 clients on its emulator."""

    def __init__(self, emulator: EmulatorState, outputs: dict[str, Any], local_dir: Path) -> None:
        self.emulator = emulator
        self.outputs = outputs
        self.local_dir = local_dir

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.emulator.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    local_dir = tmp_path_factory.mktemp("local")
    state = start_emulator("moto", local_dir=local_dir)
    try:
        outputs = terraform_apply(
            {
                "lambda_zip_path": str(placeholder_zip(local_dir)),
                "model_version": MODEL_VERSION,
            },
            target="moto",
            local_dir=local_dir,
            capture=True,
        )
        yield Stack(state, outputs, local_dir)
    finally:
        stop_emulator(local_dir)


def test_outputs_reach_stack_env(stack: Stack) -> None:
    env = read_stack_env(stack.local_dir / "stack.env")
    assert env["AWS_ENDPOINT_URL"] == stack.emulator.endpoint
    assert env["FUNCTION_NAME"] == "mushroom-scorer"
    assert env["INPUT_STREAM_NAME"] == "mushroom-observations"
    assert env["OUTPUT_STREAM_NAME"] == "mushroom-verdicts"
    assert env["MODELS_BUCKET"] == "mushroom-local-models"
    assert env["DLQ_URL"] == stack.outputs["dlq_url"]


def test_buckets_are_private_encrypted_and_versioned(stack: Stack) -> None:
    s3 = stack.client("s3")
    for purpose in ("data", "mlflow", "models"):
        bucket = stack.outputs[f"{purpose}_bucket"]
        assert bucket == f"mushroom-local-{purpose}"
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
        assert rules["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values()) and len(block) == 4
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_streams_exist_encrypted(stack: Stack) -> None:
    kinesis = stack.client("kinesis")
    for name in ("mushroom-observations", "mushroom-verdicts"):
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        assert summary["StreamStatus"] == "ACTIVE"
        assert summary["EncryptionType"] == "KMS"
    assert stack.outputs["input_stream_arn"].endswith(":stream/mushroom-observations")


def test_function_configuration(stack: Stack) -> None:
    function = stack.client("lambda").get_function(FunctionName="mushroom-scorer")
    config = function["Configuration"]
    assert config["Runtime"] == "python3.12"
    assert config["Handler"] == "lambda_function.handler.lambda_handler"
    assert config["PackageType"] == "Zip"
    assert config["Environment"]["Variables"] == {
        "MODEL_BUNDLE_URI": f"s3://mushroom-local-models/mushroom-classifier/{MODEL_VERSION}/",
        "OUTPUT_STREAM_NAME": "mushroom-verdicts",
        "POWERTOOLS_SERVICE_NAME": "mushroom-scorer",
        "POWERTOOLS_METRICS_NAMESPACE": "MushroomScorer",
        "LOG_LEVEL": "INFO",
        "SCORER_PACKAGE": "compiled",  # the default package has no LightGBM
    }
    package_uri = function["Tags"]["package_s3_uri"]
    assert package_uri == stack.outputs["lambda_package_s3_uri"]
    bucket, key = package_uri.removeprefix("s3://").split("/", 1)
    assert key == "lambda/mushroom-scorer-placeholder.zip"
    stack.client("s3").head_object(Bucket=bucket, Key=key)


def test_role_is_least_privilege(stack: Stack) -> None:
    iam = stack.client("iam")
    role = stack.outputs["function_role_arn"].rsplit("/", 1)[1]
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    granted = set()
    for statement in document["Statement"]:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert "*" not in actions and not any(a.endswith(":*") for a in actions)
        assert statement["Resource"] != "*"
        granted.update(actions)
    # Metrics go out as EMF log lines and the mapping polls: neither right is used.
    assert not granted & {"cloudwatch:PutMetricData", "kinesis:SubscribeToShard"}
    # The default stream key is AWS-managed: no key rights are needed or granted.
    assert not any(action.startswith("kms:") for action in granted)


def test_event_source_mapping(stack: Stack) -> None:
    # It invokes the alias, never $LATEST. moto returns nothing when filtered by function name:
    # list all and match the ARN.
    alias_arn = stack.outputs["function_alias_arn"]
    assert alias_arn == stack.outputs["function_arn"] + ":live"
    mappings = [
        m
        for m in stack.client("lambda").list_event_source_mappings()["EventSourceMappings"]
        if m["FunctionArn"] == alias_arn
    ]
    assert [m["UUID"] for m in mappings] == [stack.outputs["event_source_mapping_uuid"]]
    (mapping,) = mappings
    assert mapping["EventSourceArn"] == stack.outputs["input_stream_arn"]
    assert mapping["BatchSize"] == 500
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 2
    assert mapping["MaximumRecordAgeInSeconds"] == 3600
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == stack.outputs["dlq_arn"]
    assert stack.client("sqs").get_queue_url(QueueName="mushroom-scorer-dlq")["QueueUrl"]


def test_alarms_notify_the_topic(stack: Stack) -> None:
    topic = stack.outputs["sns_topic_arn"]
    assert topic.endswith(":mushroom-alerts")
    assert topic in [t["TopicArn"] for t in stack.client("sns").list_topics()["Topics"]]
    alarms = {
        a["AlarmName"]: a for a in stack.client("cloudwatch").describe_alarms()["MetricAlarms"]
    }
    for name, metric in (
        ("mushroom-unknown-rate-high", "UnknownRate"),
        ("mushroom-false-edible-rate-high", "FalseEdibleRate"),
    ):
        alarm = alarms[name]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("MushroomClassifier", metric)
        assert alarm["Dimensions"] == []
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic]
    errors = alarms["mushroom-scorer-errors"]
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": "mushroom-scorer"}]
    # The monitor's own lag: missing data breaches (a stopped monitor publishes nothing).
    lag = alarms[stack.outputs["monitor_lag_alarm_name"]]
    assert (lag["MetricName"], lag["Threshold"]) == ("MonitorLagMs", 3_600_000)
    assert lag["TreatMissingData"] == "breaching" and lag["AlarmActions"] == [topic]
    assert lag["StateValue"] == "OK"  # moto creates alarms in OK and never evaluates them


def test_dashboard_charts_the_figures_and_shows_the_alarms(stack: Stack) -> None:
    cloudwatch = stack.client("cloudwatch")
    name = stack.outputs["dashboard_name"]
    assert name == "mushroom-monitoring"
    assert name in [d["DashboardName"] for d in cloudwatch.list_dashboards()["DashboardEntries"]]
    widgets = json.loads(cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"])["widgets"]
    (alarm_widget,) = [w for w in widgets if w["type"] == "alarm"]
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    assert set(alarm_widget["properties"]["alarms"]) == {a["AlarmArn"] for a in alarms.values()}
    metric_widgets = [w for w in widgets if w["type"] == "metric"]
    # A figure per model version (ModelVersion, in a search expression); the shadow's charts
    # name the roles (ModelRole) or are its markers.
    shadow = [w for w in metric_widgets if "expression" not in str(w["properties"]["metrics"])]
    charted = {w["properties"]["metrics"][0][1]: w for w in metric_widgets if w not in shadow}
    assert set(charted) == set(DASHBOARD_FIGURES)
    roles = {m[1] for w in shadow for m in w["properties"]["metrics"] if "ModelRole" in m}
    assert roles == set(ROLE_METRICS) | {DISAGREEMENT}
    markers = {m[1] for w in shadow for m in w["properties"]["metrics"] if len(m) == 2}
    assert markers == set(MARKERS.values())
    for widget in charted.values():
        assert widget["properties"]["metrics"][0][0] == "MushroomClassifier"
        # Every model version as its own line (the ModelVersion dimension).
        assert (
            "{MushroomClassifier,ModelVersion}"
            in widget["properties"]["metrics"][1][0]["expression"]
        )
    (threshold,) = charted["UnknownRate"]["properties"]["annotations"]["horizontal"]
    assert threshold["value"] == alarms["mushroom-unknown-rate-high"]["Threshold"]


def test_ecr_repository(stack: Stack) -> None:
    (repo,) = stack.client("ecr").describe_repositories(repositoryNames=["mushroom-scorer"])[
        "repositories"
    ]
    assert repo["repositoryUri"] == stack.outputs["ecr_repository_url"]
    assert repo["imageTagMutability"] == "IMMUTABLE"


# -- the archive (terraform/archive.tf, modules/archive) -----------------------------------------

ARCHIVES = {"verdicts": "output", "observations": "input"}  # archive -> the stream it copies


def test_archive_outputs_reach_stack_env(stack: Stack) -> None:
    env = read_stack_env(stack.local_dir / "stack.env")
    assert env["ARCHIVE_DATABASE"] == "mushroom_archive"
    assert env["ARCHIVE_VERDICTS_TABLE"] == "verdicts"
    assert env["ARCHIVE_OBSERVATIONS_TABLE"] == "observations"
    assert env["ARCHIVE_LABELS_TABLE"] == "labels"
    assert env["ARCHIVE_LABEL_EVENTS_TABLE"] == "label_events"
    assert env["ARCHIVE_VERDICTS_PREFIX"] == "archive/verdicts/"
    assert env["ARCHIVE_OBSERVATIONS_PREFIX"] == "archive/observations/"
    assert env["ARCHIVE_VERDICTS_DELIVERY_STREAM"] == "mushroom-verdicts-archive"
    assert env["ARCHIVE_OBSERVATIONS_DELIVERY_STREAM"] == "mushroom-observations-archive"
    assert env["ATHENA_WORKGROUP"] == "mushroom-monitoring"
    assert env["ATHENA_RESULTS_LOCATION"] == "s3://mushroom-local-data/athena-results/"


def test_delivery_streams_copy_each_stream_as_gzip_lines_under_its_prefix(stack: Stack) -> None:
    firehose, logs = stack.client("firehose"), stack.client("logs")
    for archive, role in ARCHIVES.items():
        name = stack.outputs[f"archive_{archive}_delivery_stream"]
        description = firehose.describe_delivery_stream(DeliveryStreamName=name)[
            "DeliveryStreamDescription"
        ]
        assert description["DeliveryStreamType"] == "KinesisStreamAsSource"
        source = description["Source"]["KinesisStreamSourceDescription"]
        assert source["KinesisStreamARN"] == stack.outputs[f"{role}_stream_arn"]
        (destination,) = description["Destinations"]
        s3 = destination["ExtendedS3DestinationDescription"]
        assert s3["BucketARN"] == "arn:aws:s3:::mushroom-local-data"
        assert s3["Prefix"] == (
            f"archive/{archive}/dt=!{{timestamp:yyyy-MM-dd}}/hour=!{{timestamp:HH}}/"
        )
        assert s3["ErrorOutputPrefix"] == (
            f"archive-errors/{archive}/!{{firehose:error-output-type}}/"
            "dt=!{timestamp:yyyy-MM-dd}/"
        )
        assert s3["CompressionFormat"] == "GZIP"
        assert s3["BufferingHints"] == {"SizeInMBs": 1, "IntervalInSeconds": 10}  # local.tfvars
        processing = s3["ProcessingConfiguration"]
        assert processing["Enabled"] is True
        assert [p["Type"] for p in processing["Processors"]] == ["AppendDelimiterToRecord"]
        logging_options = s3["CloudWatchLoggingOptions"]
        assert logging_options["Enabled"] is True
        groups = logs.describe_log_groups(logGroupNamePrefix=logging_options["LogGroupName"])
        assert [g["logGroupName"] for g in groups["logGroups"]] == [f"/aws/kinesisfirehose/{name}"]
        # The local pump takes exactly this configuration (it refuses what it cannot write).
        pumped = parse_delivery_stream(description)
        assert pumped is not None and pumped.bucket == "mushroom-local-data"
        assert (pumped.buffer_bytes, pumped.buffer_interval_s) == (1024 * 1024, 10.0)
        assert pumped.compression == "GZIP" and pumped.append_delimiter


def test_delivery_roles_read_their_stream_and_write_only_their_prefixes(stack: Stack) -> None:
    iam = stack.client("iam")
    for archive, role in ARCHIVES.items():
        name = stack.outputs[f"archive_{archive}_delivery_stream"]
        (policy,) = iam.list_role_policies(RoleName=f"{name}-role")["PolicyNames"]
        document = iam.get_role_policy(RoleName=f"{name}-role", PolicyName=policy)
        statements = {s["Sid"]: s for s in document["PolicyDocument"]["Statement"]}
        for statement in statements.values():
            actions = statement["Action"]
            actions = actions if isinstance(actions, list) else [actions]
            assert "*" not in actions and not any(a.endswith(":*") for a in actions)
            assert statement["Resource"] != "*" and statement["Effect"] == "Allow"
        assert statements["ReadSourceStream"]["Resource"] == stack.outputs[f"{role}_stream_arn"]
        write = statements["WriteArchiveObjects"]
        assert sorted(write["Action"]) == ["s3:AbortMultipartUpload", "s3:PutObject"]
        assert sorted(write["Resource"]) == [
            f"arn:aws:s3:::mushroom-local-data/archive-errors/{archive}/*",
            f"arn:aws:s3:::mushroom-local-data/archive/{archive}/*",
        ]
        granted = {a for s in statements.values() for a in _as_list(s["Action"])}
        assert not any(a in granted for a in ("s3:GetObject", "s3:DeleteObject", "kms:Decrypt"))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_delivery_role_policy_is_enforced_on_its_prefixes(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployed verdicts policy, given to a user in moto with IAM enforced (in-process)."""
    from moto import mock_aws
    from moto.core import set_initial_no_auth_action_count
    from moto.iam.access_control import IAMRequest

    iam = stack.client("iam")
    role = f"{stack.outputs['archive_verdicts_delivery_stream']}-role"
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(IAMRequest, "_create_aws_request", _signed_body)

    with mock_aws():
        admin = boto3.session.Session(region_name="us-east-1")
        admin.client("s3").create_bucket(Bucket="mushroom-local-data")
        admin_iam = admin.client("iam")
        policy = admin_iam.create_policy(PolicyName="delivery", PolicyDocument=json.dumps(document))
        admin_iam.create_user(UserName="firehose")
        admin_iam.attach_user_policy(UserName="firehose", PolicyArn=policy["Policy"]["Arn"])
        key = admin_iam.create_access_key(UserName="firehose")["AccessKey"]
        s3 = boto3.session.Session(
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            region_name="us-east-1",
        ).client("s3")

        @set_initial_no_auth_action_count(0)
        def as_firehose() -> None:
            for allowed in (
                "archive/verdicts/dt=2026-12-06/hour=07/o.gz",
                "archive-errors/verdicts/processing-failed/dt=2026-12-06/o.gz",
            ):
                s3.put_object(Bucket="mushroom-local-data", Key=allowed, Body=b"x")
            for refused in (
                "archive/observations/dt=2026-12-06/hour=07/o.gz",
                "labels/forged.jsonl",
                "athena-results/x.csv",
                "archive/o.gz",
            ):
                with pytest.raises(botocore.exceptions.ClientError) as denied:
                    s3.put_object(Bucket="mushroom-local-data", Key=refused, Body=b"x")
                assert denied.value.response["Error"]["Code"] == "AccessDenied", refused
            with pytest.raises(botocore.exceptions.ClientError) as denied:
                s3.get_object(Bucket="mushroom-local-data", Key="archive/verdicts/x.gz")
            assert denied.value.response["Error"]["Code"] == "AccessDenied"

        as_firehose()


def test_glue_tables_project_the_partitions_of_the_archive(stack: Stack) -> None:
    glue = stack.client("glue")
    tables = {
        t["Name"]: t
        for t in glue.get_tables(DatabaseName=stack.outputs["archive_database"])["TableList"]
    }
    assert set(tables) == {"verdicts", "observations", "label_events", "labels"}
    for name, prefix in (
        ("verdicts", "verdicts"),
        ("observations", "observations"),
        ("label_events", "label-events"),
    ):
        table = tables[name]
        location = f"s3://mushroom-local-data/archive/{prefix}/"
        assert table["StorageDescriptor"]["Location"] == location
        assert [k["Name"] for k in table["PartitionKeys"]] == ["dt", "hour"]
        parameters = table["Parameters"]
        assert parameters["projection.enabled"] == "true"
        assert (parameters["projection.dt.type"], parameters["projection.dt.format"]) == (
            "date",
            "yyyy-MM-dd",
        )
        assert parameters["projection.dt.range"] == "2026-01-01,NOW"
        assert parameters["projection.hour.range"] == "0,23"
        assert parameters["projection.hour.digits"] == "2"
        assert parameters["storage.location.template"] == location + "dt=${dt}/hour=${hour}/"
        serde = table["StorageDescriptor"]["SerdeInfo"]
        assert serde["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
        assert serde["Parameters"]["ignore.malformed.json"] == "true"
    columns = {n: [c["Name"] for c in t["StorageDescriptor"]["Columns"]] for n, t in tables.items()}
    assert columns["observations"] == ["mushroom_id", *FEATURE_NAMES]
    assert columns["labels"] == ["mushroom_id", "label", *FEATURE_NAMES, "species_id"]
    assert columns["verdicts"][6] == "input_sequence_number"
    labels = tables["labels"]
    assert labels["StorageDescriptor"]["Location"] == "s3://mushroom-local-data/labels/"
    assert labels.get("PartitionKeys", []) == []


def test_athena_workgroup_enforces_encrypted_results_and_a_scan_limit(stack: Stack) -> None:
    group = stack.client("athena").get_work_group(WorkGroup=stack.outputs["athena_workgroup"])
    configuration = group["WorkGroup"]["Configuration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["BytesScannedCutoffPerQuery"] == 10 * 1024**3
    assert configuration["EngineVersion"]["SelectedEngineVersion"] == "Athena engine version 3"
    result = configuration["ResultConfiguration"]
    assert result["OutputLocation"] == "s3://mushroom-local-data/athena-results/"
    assert result["EncryptionConfiguration"]["EncryptionOption"] == "SSE_S3"


def test_second_plan_has_no_changes(stack: Stack) -> None:
    assert terraform_plan(target="moto", local_dir=stack.local_dir, capture=True) == 0


def _bundle(source: Path, directory: Path, version: str) -> Path:
    bundle = ModelBundle.load(source)
    bundle.model_version = version
    bundle.metadata["mlflow_run_id"] = f"run-{version}"
    return bundle.save(directory)


def _upload_bundle(s3: Any, bucket: str, directory: Path, version: str) -> None:
    """The bundle of the model the function was created with, where a rollback verifies it."""
    for path in sorted(directory.iterdir()):
        s3.put_object(
            Bucket=bucket, Key=f"mushroom-classifier/{version}/{path.name}", Body=path.read_bytes()
        )


def test_rollout_and_rollback_leave_terraform_nothing_to_change(
    stack: Stack, tiny_compiled_bundle: Path, tmp_path: Path
) -> None:
    """Runs after the no-changes plan: model 8 rolled out, rolled back, rolled forward."""
    lam, s3 = stack.client("lambda"), stack.client("s3")
    target = Target("mushroom-scorer", stack.outputs["models_bucket"])
    assert lam.get_alias(FunctionName="mushroom-scorer", Name="live")["FunctionVersion"] == "1"

    def roll_out() -> Any:
        bundle = _bundle(tiny_compiled_bundle, tmp_path / "bundle-8", "8")
        return rollout(bundle, "8", None, target=target, lambda_client=lam, s3_client=s3)

    out = roll_out()
    assert out.changed and out.served.model_version == "8" and out.served.previous_version == "1"
    live = lam.get_function_configuration(FunctionName="mushroom-scorer", Qualifier="live")
    assert live["Environment"]["Variables"][BUNDLE_ENV] == target.bundle_uri("8")
    assert terraform_plan(target="moto", local_dir=stack.local_dir, capture=True) == 0

    with pytest.raises(RolloutError, match=f"MODEL_VERSION={MODEL_VERSION}"):
        rollback(target=target, lambda_client=lam, s3_client=s3)  # its bundle is not in S3
    initial = _bundle(tiny_compiled_bundle, tmp_path / "bundle-initial", MODEL_VERSION)
    _upload_bundle(s3, target.models_bucket, initial, MODEL_VERSION)
    back = rollback(target=target, lambda_client=lam, s3_client=s3)
    assert back.served.function_version == "1" and back.served.model_version == MODEL_VERSION
    live = lam.get_function_configuration(FunctionName="mushroom-scorer", Qualifier="live")
    assert live["Environment"]["Variables"][BUNDLE_ENV] == target.bundle_uri(MODEL_VERSION)
    assert terraform_plan(target="moto", local_dir=stack.local_dir, capture=True) == 0
    with pytest.raises(RolloutError, match="nothing to roll back to"):
        rollback(target=target, lambda_client=lam, s3_client=s3)

    # Forward again; the apply of the next test must not revert it.
    assert roll_out().served.model_version == "8"


def test_shadow_start_promote_stop_leave_terraform_nothing_to_change(
    stack: Stack, tiny_compiled_bundle: Path, tmp_path: Path
) -> None:
    """After the rollout test (model 8 served): shadow 9, promote it, shadow 10, stop, roll
    back; a plan with a shadow on $LATEST and one at the end show no changes."""
    lam, s3 = stack.client("lambda"), stack.client("s3")
    target = Target("mushroom-scorer", stack.outputs["models_bucket"])

    def plan_is_clean() -> None:
        assert terraform_plan(target="moto", local_dir=stack.local_dir, capture=True) == 0

    def live() -> dict[str, str]:
        config = lam.get_function_configuration(FunctionName="mushroom-scorer", Qualifier="live")
        return config["Environment"]["Variables"]

    def start(version: str) -> Any:
        bundle = _bundle(tiny_compiled_bundle, tmp_path / f"bundle-{version}", version)
        return start_shadow(bundle, version, None, target=target, lambda_client=lam, s3_client=s3)

    started = start("9")
    assert started.served.model_version == "8" and started.served.shadow_model_version == "9"
    assert live()[SHADOW_ENV] == target.bundle_uri("9")
    plan_is_clean()  # $LATEST names the shadow: Terraform ignores it
    promoted = promote_shadow(target=target, lambda_client=lam, s3_client=s3)
    assert promoted.served.model_version == "9" and SHADOW_ENV not in live()
    assert start("10").served.shadow_model_version == "10"
    stopped = stop_shadow(target=target, lambda_client=lam, s3_client=s3)
    assert stopped.served.model_version == "9" and stopped.served.shadow_model_version is None
    back = rollback(target=target, lambda_client=lam, s3_client=s3)  # to 9 with shadow 10
    assert back.served.shadow_model_version == "10" and live()[SHADOW_ENV].endswith("/10/")
    # Two plans, not one per command (CI time): the commands between them change only what
    # these two cover, the variables of $LATEST and the alias's version.
    plan_is_clean()
    shadow = current_shadow(target=target, lambda_client=lam)
    assert shadow is not None and (shadow.served_model_version, shadow.model_version) == (
        "9",
        "10",
    )


def _lambda_resource(response: Any) -> str:
    """The ARN AWS authorizes a Lambda request against (moto checks every one against "*").

    The function's ARN, qualified by the alias in the path or the Qualifier parameter.
    """
    match = re.search(r"/functions/([^/?]+)(?:/aliases/([^/?]+))?", unquote(response.path))
    if match is None:
        return "*"
    name = match[1]
    arn = (
        name
        if name.startswith("arn:")
        else (f"arn:aws:lambda:{response.region}:{response.current_account}:function:{name}")
    )
    qualifier = match[2] or response.querystring.get("Qualifier", [None])[0]
    return f"{arn}:{qualifier}" if qualifier else arn


def _signed_body(request: Any) -> Any:
    """What the client signed: moto signs a body-less GET or DELETE over its parsed
    parameters instead of the empty body, so every such call fails SignatureDoesNotMatch."""
    from botocore.awsrequest import AWSRequest

    signed = request._get_string_between("SignedHeaders=", ",", request._headers["Authorization"])
    headers = request._create_headers_for_aws_request(signed.split(";"), request._headers)
    bodyless = request._method in ("GET", "HEAD", "DELETE")
    data = request._body or (b"" if bodyless else request._data)
    aws_request = AWSRequest(method=request._method, url=request._path, data=data, headers=headers)
    aws_request.context["timestamp"] = headers["X-Amz-Date"]
    return aws_request


def test_model_deployer_policy_rolls_out_and_nothing_else(
    stack: Stack, tiny_compiled_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployed policy document, given to a user in moto with IAM enforced (in-process)."""
    from moto import mock_aws
    from moto.awslambda.responses import LambdaResponse
    from moto.core import set_initial_no_auth_action_count
    from moto.iam.access_control import IAMRequest

    iam = stack.client("iam")
    arn = stack.outputs["model_deployer_policy_arn"]
    default = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=default)["PolicyVersion"]
    actions = sorted(
        action
        for statement in document["Document"]["Statement"]
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    )
    assert actions == [
        "lambda:GetAlias",
        "lambda:GetFunctionConfiguration",
        "lambda:PublishVersion",
        "lambda:UpdateAlias",
        "lambda:UpdateFunctionConfiguration",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
    ]
    bundle = _bundle(tiny_compiled_bundle, tmp_path / "bundle-9", "9")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
        monkeypatch.setenv(key, value)
    # moto authorizes Lambda requests against "*"; AWS against the function's (qualified) ARN.
    monkeypatch.setattr(LambdaResponse, "_determine_resource", _lambda_resource, raising=False)
    monkeypatch.setattr(IAMRequest, "_create_aws_request", _signed_body)

    with mock_aws():
        admin = boto3.session.Session(region_name="us-east-1")
        role = admin.client("iam").create_role(
            RoleName="scorer", AssumeRolePolicyDocument=json.dumps({"Statement": []})
        )["Role"]["Arn"]
        lam = admin.client("lambda")
        initial = f"s3://{stack.outputs['models_bucket']}/mushroom-classifier/{MODEL_VERSION}/"
        for name in ("mushroom-scorer", "another-function"):
            lam.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=role,
                Handler="lambda_function.handler.lambda_handler",
                Code={"ZipFile": placeholder_zip(tmp_path).read_bytes()},
                Environment={"Variables": {BUNDLE_ENV: initial, "LOG_LEVEL": "INFO"}},
                Publish=True,
            )
            lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
        admin.client("s3").create_bucket(Bucket=stack.outputs["models_bucket"])
        initial_bundle = _bundle(tiny_compiled_bundle, tmp_path / "bundle-initial", MODEL_VERSION)
        _upload_bundle(
            admin.client("s3"), stack.outputs["models_bucket"], initial_bundle, MODEL_VERSION
        )
        admin.client("kinesis").create_stream(StreamName="mushroom-observations", ShardCount=1)
        admin_iam = admin.client("iam")
        policy = admin_iam.create_policy(
            PolicyName="model-deployer", PolicyDocument=json.dumps(document["Document"])
        )["Policy"]["Arn"]

        def credentials(user: str, policy_arn: str | None) -> boto3.session.Session:
            admin_iam.create_user(UserName=user)
            if policy_arn:
                admin_iam.attach_user_policy(UserName=user, PolicyArn=policy_arn)
            key = admin_iam.create_access_key(UserName=user)["AccessKey"]
            return boto3.session.Session(
                aws_access_key_id=key["AccessKeyId"],
                aws_secret_access_key=key["SecretAccessKey"],
                region_name="us-east-1",
            )

        deployer, nobody = credentials("deployer", policy), credentials("nobody", None)
        target = Target("mushroom-scorer", stack.outputs["models_bucket"])

        @set_initial_no_auth_action_count(0)
        def as_deployer() -> None:
            dlam, ds3 = deployer.client("lambda"), deployer.client("s3")
            result = rollout(bundle, "9", None, target=target, lambda_client=dlam, s3_client=ds3)
            assert result.changed and result.served.model_version == "9"
            back = rollback(target=target, lambda_client=dlam, s3_client=ds3)
            assert back.served.function_version == "1"
            # The shadow commands need nothing more than the rollout's rights.
            shadow = _bundle(tiny_compiled_bundle, tmp_path / "bundle-10", "10")
            kwargs = {"target": target, "lambda_client": dlam, "s3_client": ds3}
            started = start_shadow(shadow, "10", None, **kwargs)
            assert started.served.shadow_model_version == "10"
            assert stop_shadow(**kwargs).served.shadow_model_version is None
            assert start_shadow(shadow, "10", None, **kwargs).changed
            promoted = promote_shadow(**kwargs)
            assert promoted.served.model_version == "10"
            assert current_shadow(target=target, lambda_client=dlam) is None

            refused = [
                lambda: deployer.client("kinesis").delete_stream(
                    StreamName="mushroom-observations"
                ),
                lambda: dlam.delete_function(FunctionName="mushroom-scorer"),
                lambda: dlam.update_function_code(
                    FunctionName="mushroom-scorer", ZipFile=b"PK\x05\x06" + b"\0" * 18
                ),
                lambda: dlam.update_function_configuration(
                    FunctionName="another-function", Environment={"Variables": {}}
                ),
                lambda: deployer.client("iam").attach_user_policy(
                    UserName="deployer", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess"
                ),
                lambda: deployer.client("iam").create_user(UserName="intruder"),
            ]
            for call in refused:
                with pytest.raises(botocore.exceptions.ClientError) as denied:
                    call()
                error = denied.value.response
                assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
                # REST-JSON clients cannot parse moto's XML error: the code is in the message.
                assert "AccessDenied" in error["Error"]["Code"] + error["Error"]["Message"], error
                assert "SignatureDoesNotMatch" not in error["Error"]["Message"]
            # Enforcement is real: without the policy, the same rollout is refused.
            with pytest.raises(RolloutError, match="AccessDenied"):
                rollout(
                    bundle,
                    "9",
                    None,
                    target=target,
                    lambda_client=nobody.client("lambda"),
                    s3_client=nobody.client("s3"),
                )

        as_deployer()
        assert lam.get_function(FunctionName="mushroom-scorer")["Configuration"]
        kinesis = admin.client("kinesis")
        assert kinesis.list_streams()["StreamNames"] == ["mushroom-observations"]


def test_dlq_redrive_policy_reads_the_dlq_and_the_input_stream_only(stack: Stack) -> None:
    """``make redrive``: take messages from the DLQ, read and put back on the input stream."""
    iam = stack.client("iam")
    arn = stack.outputs["dlq_redrive_policy_arn"]
    default = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=default)["PolicyVersion"]
    granted = {}
    for statement in document["Document"]["Statement"]:
        actions = statement["Action"]
        resources = statement["Resource"]
        for action in actions if isinstance(actions, list) else [actions]:
            granted[action] = resources if isinstance(resources, list) else [resources]
    assert granted == {
        "sqs:ReceiveMessage": [stack.outputs["dlq_arn"]],
        "sqs:DeleteMessage": [stack.outputs["dlq_arn"]],
        "sqs:ChangeMessageVisibility": [stack.outputs["dlq_arn"]],
        "kinesis:GetShardIterator": [stack.outputs["input_stream_arn"]],
        "kinesis:GetRecords": [stack.outputs["input_stream_arn"]],
        "kinesis:PutRecords": [stack.outputs["input_stream_arn"]],
    }


def test_aws_settings_tls_only_buckets_and_customer_stream_key(stack: Stack) -> None:
    """What vars/aws.tfvars gets and the emulator cannot serve: TLS-only bucket policies, and a
    customer-managed stream key granted to the function through Kinesis only.

    Runs after the no-changes plan; it leaves only what the destroy test removes.
    """
    s3, iam = stack.client("s3"), stack.client("iam")
    key_arn = stack.client("kms").create_key(Description="mushroom streams")["KeyMetadata"]["Arn"]
    lam = stack.client("lambda")

    def served_bundle() -> str:
        live = lam.get_function_configuration(FunctionName="mushroom-scorer", Qualifier="live")
        return live["Environment"]["Variables"][BUNDLE_ENV]

    before = served_bundle()
    terraform_apply(
        {"stream_kms_key_id": key_arn, "s3_deny_insecure_transport": True},
        target="moto",
        local_dir=stack.local_dir,
        capture=True,
    )
    buckets = [stack.outputs[f"{purpose}_bucket"] for purpose in ("data", "mlflow", "models")]
    try:
        for bucket in buckets:
            (deny,) = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
            assert deny["Effect"] == "Deny" and deny["Action"] == "s3:*"
            assert deny["Principal"] == "*"
            assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            assert sorted(deny["Resource"]) == [
                f"arn:aws:s3:::{bucket}",
                f"arn:aws:s3:::{bucket}/*",
            ]
        # The emulator speaks plain HTTP, and moto enforces the Deny: the policy is in effect.
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            s3.put_object(Bucket=buckets[0], Key="labels/plain-http.jsonl", Body=b"{}")
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

        role = stack.outputs["function_role_arn"].rsplit("/", 1)[1]
        (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
        statements = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"][
            "Statement"
        ]
        (key,) = [s for s in statements if s.get("Sid") == "UseStreamKeyThroughKinesis"]
        assert sorted(key["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
        assert key["Resource"] == key_arn
        assert key["Condition"] == {
            "StringEquals": {"kms:ViaService": "kinesis.us-east-1.amazonaws.com"}
        }
        summary = stack.client("kinesis").describe_stream_summary(StreamName="mushroom-verdicts")
        assert summary["StreamDescriptionSummary"]["KeyId"] == key_arn
        # The archive's delivery roles read the streams: Decrypt on the key, through Kinesis only.
        for archive in ARCHIVES:
            role = f"{stack.outputs[f'archive_{archive}_delivery_stream']}-role"
            (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
            statements = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            (key,) = [
                s
                for s in statements["Statement"]
                if s.get("Sid") == "DecryptSourceStreamThroughKinesis"
            ]
            assert key["Action"] == "kms:Decrypt" and key["Resource"] == key_arn
            assert key["Condition"] == {
                "StringEquals": {"kms:ViaService": "kinesis.us-east-1.amazonaws.com"}
            }
        # A later apply does not revert the model rolled out before it.
        assert served_bundle() == before
    finally:
        # Terraform cannot refresh the package object through the Deny, so the policies go
        # before the destroy that follows, as an operator with bucket rights would remove them.
        for bucket in buckets:
            s3.delete_bucket_policy(Bucket=bucket)


def test_destroy_leaves_nothing(stack: Stack) -> None:
    # Destroy must not need the package any more (build/ may have been cleaned).
    (stack.local_dir / "mushroom-scorer-placeholder.zip").unlink()
    terraform_destroy(target="moto", local_dir=stack.local_dir, capture=True)
    assert stack.client("s3").list_buckets()["Buckets"] == []
    assert stack.client("kinesis").list_streams()["StreamNames"] == []
    assert stack.client("lambda").list_functions()["Functions"] == []
    assert stack.client("lambda").list_event_source_mappings()["EventSourceMappings"] == []
    assert stack.client("sqs").list_queues().get("QueueUrls", []) == []
    assert stack.client("sns").list_topics()["Topics"] == []
    assert stack.client("cloudwatch").describe_alarms()["MetricAlarms"] == []
    assert stack.client("iam").list_roles()["Roles"] == []
    assert stack.client("ecr").describe_repositories()["repositories"] == []
    assert stack.client("logs").describe_log_groups()["logGroups"] == []
    assert stack.client("firehose").list_delivery_streams()["DeliveryStreamNames"] == []
    assert stack.client("glue").get_databases()["DatabaseList"] == []
    groups = stack.client("athena").list_work_groups()["WorkGroups"]
    assert [g["Name"] for g in groups] == ["primary"]  # every account's built-in workgroup
    env = read_stack_env(stack.local_dir / "stack.env")
    assert "FUNCTION_NAME" not in env and env["AWS_ENDPOINT_URL"] == stack.emulator.endpoint
