"""The local IAM check: request context per service and IAM's evaluation of identity policies."""

from __future__ import annotations

import pytest

from config.settings import REPO_ROOT
from emulation.lambda_runtime.iam_policy import evaluate, request_context

ROOT = REPO_ROOT
ACCOUNT, REGION = "123456789012", "us-east-1"
PRINCIPAL = f"arn:aws:sts::{ACCOUNT}:assumed-role/mushroom-scorer-role/mushroom-scorer"
# The statements Terraform gives the scorer's role (terraform/modules/scorer/main.tf), resolved.
SCORER = [
    {
        "Effect": "Allow",
        "Action": ["kinesis:DescribeStream", "kinesis:GetRecords", "kinesis:ListShards"],
        "Resource": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/mushroom-observations",
    },
    {
        "Effect": "Allow",
        "Action": ["kinesis:PutRecord", "kinesis:PutRecords"],
        "Resource": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/mushroom-verdicts",
    },
    {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::models/mushroom-classifier/*",
    },
    {
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": "arn:aws:s3:::models",
        "Condition": {"StringLike": {"s3:prefix": ["mushroom-classifier/*"]}},
    },
    {
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/mushroom-scorer:*",
    },
    {
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": f"arn:aws:sqs:{REGION}:{ACCOUNT}:mushroom-scorer-dlq",
    },
    {
        "Effect": "Allow",
        "Action": "cloudwatch:PutMetricData",
        "Resource": "*",
        "Condition": {"StringEquals": {"cloudwatch:namespace": "MushroomClassifier"}},
    },
]


def allowed(service: str, operation: str, statements=SCORER, **params) -> tuple[bool, str]:
    action, resource, keys = request_context(service, operation, params, REGION, ACCOUNT, PRINCIPAL)
    return evaluate(statements, action, resource, keys)


@pytest.mark.parametrize(
    "service, operation, params, expected",
    [
        ("kinesis", "PutRecords", {"StreamName": "mushroom-verdicts"}, True),
        ("kinesis", "PutRecords", {"StreamName": "mushroom-observations"}, False),
        ("kinesis", "GetRecords", {"StreamARN": SCORER[0]["Resource"]}, True),
        ("kinesis", "DeleteStream", {"StreamName": "mushroom-verdicts"}, False),
        ("s3", "GetObject", {"Bucket": "models", "Key": "mushroom-classifier/3/model.txt"}, True),
        ("s3", "HeadObject", {"Bucket": "models", "Key": "mushroom-classifier/3/x"}, True),
        ("s3", "GetObject", {"Bucket": "models", "Key": "lambda/code.zip"}, False),
        ("s3", "PutObject", {"Bucket": "models", "Key": "mushroom-classifier/3/x"}, False),
        ("s3", "ListObjectsV2", {"Bucket": "models", "Prefix": "mushroom-classifier/3/"}, True),
        ("s3", "ListObjectsV2", {"Bucket": "models", "Prefix": "lambda/"}, False),
        (
            "logs",
            "PutLogEvents",
            {"logGroupName": "/aws/lambda/mushroom-scorer", "logStreamName": "2026/x"},
            True,
        ),
        (
            "logs",
            "PutLogEvents",
            {"logGroupName": "/aws/lambda/other", "logStreamName": "s"},
            False,
        ),
        (
            "sqs",
            "SendMessage",
            {"QueueUrl": f"http://localhost:5000/{ACCOUNT}/mushroom-scorer-dlq"},
            True,
        ),
        ("sqs", "SendMessage", {"QueueUrl": f"http://localhost:5000/{ACCOUNT}/other"}, False),
        ("cloudwatch", "PutMetricData", {"Namespace": "MushroomClassifier"}, True),
        ("cloudwatch", "PutMetricData", {"Namespace": "Other"}, False),
        ("sts", "GetCallerIdentity", {}, True),
        ("dynamodb", "GetItem", {"TableName": "t"}, False),
    ],
)
def test_the_scorer_role_allows_exactly_its_calls(service, operation, params, expected):
    ok, reason = allowed(service, operation, **params)
    assert ok is expected, reason


def test_explicit_deny_wins_and_wildcards_match_like_iam():
    statements = [
        {"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"},
        {
            "Effect": "Deny",
            "Action": "kinesis:Delete*",
            "Resource": "arn:aws:kinesis:*:*:stream/p?od",
        },
    ]
    assert allowed("kinesis", "DeleteStream", statements, StreamName="test")[0]
    ok, reason = allowed("kinesis", "DeleteStream", statements, StreamName="prod")
    assert not ok and reason == "an explicit deny in an identity-based policy"
    assert allowed(
        "kinesis",
        "PutRecord",
        [{"Effect": "Allow", "Action": "KINESIS:putrecord", "Resource": "*"}],
        StreamName="x",
    )[0]
    not_action = [{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}]
    assert allowed("kinesis", "PutRecord", not_action, StreamName="x")[0]
    assert not allowed("s3", "GetObject", not_action, Bucket="b", Key="k")[0]


def test_an_unknown_condition_key_denies_and_says_so():
    statements = [
        {
            "Effect": "Allow",
            "Action": "kinesis:PutRecords",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}},
        }
    ]
    ok, reason = allowed("kinesis", "PutRecords", statements, StreamName="x")
    assert not ok
    assert (
        reason
        == "the local IAM check refuses: condition key aws:SourceVpce cannot be evaluated locally"
    )


def test_the_terraform_policy_keeps_the_statements_these_tests_assume():
    # The scorer's policy in Terraform grants what SCORER resolves (no loosening for the emulator).
    text = (ROOT / "terraform" / "modules" / "scorer" / "main.tf").read_text()
    for needle in (
        '"kinesis:PutRecords"',
        '"s3:GetObject"',
        "var.output_stream_arn",
    ):
        assert needle in text
    # Metrics are EMF log lines: the role has no PutMetricData to test against.
    assert '"cloudwatch:PutMetricData"' not in text
