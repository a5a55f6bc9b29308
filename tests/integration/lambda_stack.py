"""A small function, its streams, DLQ and mapping, created the way Terraform does it (shared
by the local runtime's integration tests)."""

from __future__ import annotations

import base64
import io
import json
import socket
import time
import zipfile
from typing import Any, Callable

import boto3

REGION = "us-east-1"
FUNCTION = "local-lambda-test"
BUCKET = "local-lambda-test-code"
# The execution role's trust policy: the Lambda service may assume it.
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}

HANDLER_SOURCE = """
import base64
import json
import os
import sys
import time

import boto3

_kinesis = boto3.client("kinesis")  # created once per execution environment (cold start)
_OUT = os.environ["OUTPUT_STREAM_NAME"]


def handle(event, context):
    entries = []
    for record in event["Records"]:
        body = json.loads(base64.b64decode(record["kinesis"]["data"]))
        if body.get("poison"):
            raise ValueError(f"poison record {body['id']}")
        if body.get("write_input"):  # not allowed by the role: PutRecords on the input stream
            _kinesis.put_records(StreamName=os.environ["INPUT_STREAM_NAME"], Records=[
                {"Data": b"{}", "PartitionKey": "x"}])
        if body.get("sleep"):
            time.sleep(body["sleep"])
        entries.append({
            "Data": json.dumps({
                "id": body["id"],
                "seq": record["kinesis"]["sequenceNumber"],
                "eventID": record["eventID"],
                "function_name": context.function_name,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "remaining_ms": context.get_remaining_time_in_millis(),
                "request_id": context.aws_request_id,
                "task_root_first": sys.path[0] == os.environ["LAMBDA_TASK_ROOT"],
                "handler_env": os.environ["_HANDLER"],
                "greeting": os.environ.get("GREETING"),
                "access_key": os.environ["AWS_ACCESS_KEY_ID"],
                "function_version": context.function_version,
                "invoked_arn": context.invoked_function_arn,
            }).encode(),
            "PartitionKey": body["id"],
        })
    if entries:
        _kinesis.put_records(StreamName=_OUT, Records=entries)
    return {"batchItemFailures": []}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def zip_source(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("testfn/__init__.py", "")
        archive.writestr("testfn/app.py", source)
    return buffer.getvalue()


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within timeout")
        time.sleep(interval)


class Stack:
    """Streams, DLQ, function and mapping created the way Terraform does it."""

    def __init__(self, suffix: str) -> None:
        self.kinesis = boto3.client("kinesis")
        self.lambda_ = boto3.client("lambda")
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        self.iam = boto3.client("iam")
        self.suffix = suffix
        self.function = f"{FUNCTION}-{suffix}"
        self.input = f"in-{suffix}"
        self.output = f"out-{suffix}"
        for name in (self.input, self.output):
            self.kinesis.create_stream(StreamName=name, ShardCount=1)
        self.input_arn = self.kinesis.describe_stream_summary(StreamName=self.input)[
            "StreamDescriptionSummary"
        ]["StreamARN"]
        self.queue_url = self.sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
        self.queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]

    def deploy(self, source: str = HANDLER_SOURCE, timeout: int = 30) -> bytes:
        role = self.iam.create_role(
            RoleName=f"role-{self.suffix}", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
        )["Role"]["Arn"]
        output_arn = self.kinesis.describe_stream_summary(StreamName=self.output)[
            "StreamDescriptionSummary"
        ]["StreamARN"]
        # What the function does, nothing more (the way Terraform scopes the scorer's role).
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "kinesis:PutRecords", "Resource": output_arn}
            ],
        }
        self.iam.put_role_policy(
            RoleName=f"role-{self.suffix}", PolicyName="fn", PolicyDocument=json.dumps(policy)
        )
        code = zip_source(source)
        try:
            self.s3.create_bucket(Bucket=BUCKET)
        except self.s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        key = f"lambda/{self.function}.zip"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=code)
        self.lambda_.create_function(
            FunctionName=self.function,
            Runtime="python3.12",
            Role=role,
            Handler="testfn.app.handle",
            Code={"S3Bucket": BUCKET, "S3Key": key},
            Timeout=timeout,
            MemorySize=256,
            Environment={
                "Variables": {
                    "OUTPUT_STREAM_NAME": self.output,
                    "INPUT_STREAM_NAME": self.input,
                    "GREETING": "hi",
                }
            },
            Tags={"package_s3_uri": f"s3://{BUCKET}/{key}"},
        )
        return code

    def publish(self, greeting: str) -> str:
        """Publish a version whose GREETING names it (a rollout changes only the environment)."""
        self.lambda_.update_function_configuration(
            FunctionName=self.function,
            Environment={
                "Variables": {
                    "OUTPUT_STREAM_NAME": self.output,
                    "INPUT_STREAM_NAME": self.input,
                    "GREETING": greeting,
                }
            },
        )
        return self.lambda_.publish_version(FunctionName=self.function)["Version"]

    def map(self, function: str | None = None, **settings: Any) -> dict[str, Any]:
        return self.lambda_.create_event_source_mapping(
            FunctionName=function or self.function,
            EventSourceArn=self.input_arn,
            StartingPosition="TRIM_HORIZON",
            **settings,
        )

    def put(self, bodies: list[dict[str, Any]]) -> list[str]:
        response = self.kinesis.put_records(
            StreamName=self.input,
            Records=[{"Data": json.dumps(b).encode(), "PartitionKey": b["id"]} for b in bodies],
        )
        assert response.get("FailedRecordCount", 0) == 0
        return [r["SequenceNumber"] for r in response["Records"]]

    def outputs(self) -> list[dict[str, Any]]:
        shard = self.kinesis.list_shards(StreamName=self.output)["Shards"][0]["ShardId"]
        iterator = self.kinesis.get_shard_iterator(
            StreamName=self.output, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = self.kinesis.get_records(ShardIterator=iterator, Limit=10000)["Records"]
        return [json.loads(r["Data"]) for r in records]

    def dlq(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]


def kinesis_record(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    sequence = "49590338271490256608559692538361571095921575989136588898"
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": body["id"],
            "sequenceNumber": sequence,
            "data": base64.b64encode(json.dumps(body).encode()).decode(),
            "approximateArrivalTimestamp": 1545084650.987,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
        "awsRegion": REGION,
        "eventSourceARN": stack.input_arn,
    }
