# The scorer: ECR repository, DLQ, log group, least-privilege role, the Lambda function (Image or
# Zip) and its Kinesis event source mapping.

locals {
  is_zip        = var.package_type == "Zip"
  zip_file_name = local.is_zip && var.lambda_zip_path != "" ? basename(var.lambda_zip_path) : ""
  zip_key       = "lambda/${local.zip_file_name}"
  # Hashes only when the file is there: destroy must work after build/ was cleaned.
  zip_exists = local.is_zip && var.lambda_zip_path != "" && fileexists(var.lambda_zip_path)
  zip_md5    = local.zip_exists ? filemd5(var.lambda_zip_path) : null
  zip_sha256 = local.zip_exists ? filebase64sha256(var.lambda_zip_path) : null
  log_group  = "/aws/lambda/${var.function_name}"
}

# ---------------------------------------------------------------------------------------------
# Container registry (package_type = Image; CD pushes immutable, digest-pinned images)
# ---------------------------------------------------------------------------------------------

resource "aws_ecr_repository" "this" {
  # LocalStack Community has no ECR: deploy.py turns it off there.
  count = var.create_ecr_repository ? 1 : 0

  name                 = var.ecr_repository_name
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.force_delete_repository

  image_scanning_configuration {
    scan_on_push = true
  }

  # KMS with the AWS-managed aws/ecr key: Lambda pulls without extra key policy.
  encryption_configuration {
    encryption_type = "KMS"
  }
}

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

# Only the Lambda service may pull, and only for this function (same-account image functions
# need BatchGetImage and GetDownloadUrlForLayer in the repository policy).
data "aws_iam_policy_document" "ecr_lambda_pull" {
  count = var.create_ecr_repository ? 1 : 0

  statement {
    sid     = "LambdaImageRetrieval"
    actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringLike"
      variable = "aws:sourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:lambda:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:function:${var.function_name}"]
    }
  }
}

resource "aws_ecr_repository_policy" "lambda_pull" {
  count = var.create_ecr_repository ? 1 : 0

  repository = aws_ecr_repository.this[0].name
  policy     = data.aws_iam_policy_document.ecr_lambda_pull[0].json
}

# ---------------------------------------------------------------------------------------------
# Dead-letter queue: on-failure destination of the event source mapping
# ---------------------------------------------------------------------------------------------

resource "aws_sqs_queue" "dlq" {
  name                      = var.dlq_name
  message_retention_seconds = 1209600 # 14 days, the maximum: time to inspect and replay
  sqs_managed_sse_enabled   = true
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:Logs hold verdicts and validation errors, no secrets; encrypted by CloudWatch by default, a CMK is not needed.
  #checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days); a year of debug logs is not needed for a scorer whose outputs are in Kinesis.
  name              = local.log_group
  retention_in_days = var.log_retention_days
}

# ---------------------------------------------------------------------------------------------
# IAM: exactly what the function does, nothing more
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = "${var.function_name}-role"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

# A customer-managed stream key needs key rights in both directions (the scorer reads one
# stream and writes the other; the redrive reads and re-puts); the AWS-managed aws/kinesis key
# needs none. One statement, merged into each policy that touches the streams.
data "aws_iam_policy_document" "stream_key" {
  count = var.stream_kms_key_arn == null ? 0 : 1
  statement {
    sid       = "UseStreamKeyThroughKinesis"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.stream_kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["kinesis.${data.aws_region.current.name}.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "scorer" {
  source_policy_documents = data.aws_iam_policy_document.stream_key[*].json
  statement {
    sid = "ReadInputStream"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
    ]
    resources = [var.input_stream_arn]
  }

  statement {
    sid       = "WriteOutputStream"
    actions   = ["kinesis:PutRecord", "kinesis:PutRecords"]
    resources = [var.output_stream_arn]
  }

  statement {
    sid       = "ReadModelBundles"
    actions   = ["s3:GetObject"]
    resources = ["${var.models_bucket_arn}/${var.model_prefix}*"]
  }

  statement {
    sid       = "ListModelBundles"
    actions   = ["s3:ListBucket"]
    resources = [var.models_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.model_prefix}*"]
    }
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  statement {
    sid       = "SendToDeadLetterQueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }

  # No cloudwatch:PutMetricData: the function's metrics are EMF lines in its log (Powertools),
  # which CloudWatch Logs turns into metrics with the log-writing rights above.

}

resource "aws_iam_role_policy" "this" {
  name   = "${var.function_name}-policy"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.scorer.json
}

# ---------------------------------------------------------------------------------------------
# The function
# ---------------------------------------------------------------------------------------------

resource "aws_s3_object" "package" {
  count = local.is_zip ? 1 : 0

  bucket = var.models_bucket
  key    = local.zip_key
  source = var.lambda_zip_path
  # source_hash (not etag): a large zip is uploaded in parts, whose ETag is not the file's MD5.
  source_hash = local.zip_md5
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:The function only calls Kinesis, S3 and CloudWatch; a VPC would add NAT/endpoints without protecting anything.
  #checkov:skip=CKV_AWS_173:Environment variables hold names and an S3 URI, no secrets; Lambda encrypts them at rest by default.
  #checkov:skip=CKV_AWS_272:Code signing needs AWS Signer profiles; the image is pinned by digest and the zip by CodeSha256.
  #checkov:skip=CKV_AWS_116:Only the Kinesis event source mapping invokes it, and its on-failure destination is the SQS DLQ; a function DLQ applies to async invocations only.
  #checkov:skip=CKV_AWS_50:X-Ray tracing is optional here; throughput is measured by the project's benchmarks and EMF metrics.
  function_name = var.function_name
  description   = "Scores mushroom observations from Kinesis and writes verdicts to Kinesis."
  role          = aws_iam_role.this.arn
  package_type  = var.package_type
  architectures = ["x86_64"]
  memory_size   = var.memory_mb
  timeout       = var.timeout_s

  reserved_concurrent_executions = var.reserved_concurrency

  # Image: handler and runtime come from the image (CMD, base image).
  image_uri = local.is_zip ? null : var.image_uri

  # Zip: deployed through S3 (the default package, 15 MB, would fit a direct upload; the
  # lightgbm flavour, about 50 MB, would not).
  runtime          = local.is_zip ? "python3.12" : null
  handler          = local.is_zip ? "lambda_function.handler.lambda_handler" : null
  s3_bucket        = local.is_zip ? aws_s3_object.package[0].bucket : null
  s3_key           = local.is_zip ? aws_s3_object.package[0].key : null
  source_code_hash = local.zip_sha256

  environment {
    variables = {
      MODEL_BUNDLE_URI             = var.model_bundle_uri
      OUTPUT_STREAM_NAME           = var.output_stream_name
      POWERTOOLS_SERVICE_NAME      = var.function_name
      POWERTOOLS_METRICS_NAMESPACE = var.metrics_namespace
      LOG_LEVEL                    = var.log_level
      # What the package can score with: rollout refuses a bundle it could not serve.
      SCORER_PACKAGE = var.scorer_package
    }
  }

  # The local Lambda runtime (emulation/local_lambda.py) fetches the zip from here on emulators
  # that return an unreachable Code.Location.
  tags = local.is_zip ? { package_s3_uri = "s3://${var.models_bucket}/${local.zip_key}" } : {}

  # Every code or configuration change publishes a version; the alias "live" serves one.
  publish = true

  lifecycle {
    # The served model and its shadow are data, changed by deployment/rollout.py and
    # deployment/shadow.py (update the variables, publish a version, move the alias):
    # Terraform sets the model at creation, never sets a shadow, and reverts neither.
    ignore_changes = [
      environment[0].variables["MODEL_BUNDLE_URI"],
      environment[0].variables["SHADOW_BUNDLE_URI"],
    ]

    precondition {
      condition     = local.is_zip ? var.lambda_zip_path != "" : var.image_uri != ""
      error_message = "package_type = Zip needs lambda_zip_path; package_type = Image needs image_uri."
    }
  }

  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.this]
}

# The version the event source mapping invokes. Created on the version the first apply
# published; from then on deployment/rollout.py moves it (and writes what it serves into its
# description), so Terraform ignores both.
resource "aws_lambda_alias" "live" {
  name             = var.alias_name
  description      = "Served model: set by deployment/rollout.py"
  function_name    = aws_lambda_function.this.function_name
  function_version = aws_lambda_function.this.version

  lifecycle {
    ignore_changes = [function_version, description]
  }
}

# ---------------------------------------------------------------------------------------------
# Kinesis -> Lambda (through the alias, never $LATEST)
# ---------------------------------------------------------------------------------------------

resource "aws_lambda_event_source_mapping" "this" {
  event_source_arn                   = var.input_stream_arn
  function_name                      = aws_lambda_alias.live.arn
  starting_position                  = var.starting_position
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.maximum_batching_window_in_seconds
  parallelization_factor             = var.parallelization_factor
  maximum_retry_attempts             = var.maximum_retry_attempts
  maximum_record_age_in_seconds      = var.maximum_record_age_in_seconds
  bisect_batch_on_function_error     = var.bisect_batch_on_function_error
  function_response_types            = ["ReportBatchItemFailures"]

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.dlq.arn
    }
  }
}

# ---------------------------------------------------------------------------------------------
# Model deployer: what a model rollout needs (deployment/rollout.py), nothing more
# ---------------------------------------------------------------------------------------------

# For whatever runs the retraining loop: it may change which model the function serves, not
# the infrastructure (no delete, no code, no IAM, no streams).
data "aws_iam_policy_document" "model_deployer" {
  statement {
    sid = "RollOutModelVersions"
    actions = [
      "lambda:GetAlias",
      "lambda:GetFunctionConfiguration",
      "lambda:PublishVersion",
      "lambda:UpdateAlias",
      "lambda:UpdateFunctionConfiguration",
    ]
    # The function and its qualified ARNs (versions, the alias).
    resources = [aws_lambda_function.this.arn, "${aws_lambda_function.this.arn}:*"]
  }

  statement {
    sid       = "PublishModelBundles"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${var.models_bucket_arn}/${var.model_prefix}*"]
  }

  # Only so that S3 answers "no such key" (not 403) for a version not uploaded yet: the
  # rollout never overwrites a bundle, so it must tell "absent" from "refused".
  statement {
    sid       = "SeeWhichModelBundlesExist"
    actions   = ["s3:ListBucket"]
    resources = [var.models_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.model_prefix}*"]
    }
  }

  # The models bucket is encrypted with the AWS-managed aws/s3 key (storage module): no key
  # rights are needed. A customer-managed key would need kms:GenerateDataKey and kms:Decrypt.
}

resource "aws_iam_policy" "model_deployer" {
  name        = "${var.function_name}-model-deployer"
  description = "Roll out and roll back model versions of ${var.function_name} (deployment/rollout.py)."
  policy      = data.aws_iam_policy_document.model_deployer.json
}

# ---------------------------------------------------------------------------------------------
# DLQ redrive: what `make redrive` needs (deployment/redrive.py), nothing more
# ---------------------------------------------------------------------------------------------

# For the operator who replays failed batches once the function is fixed: read the DLQ's
# pointers, read those records back from the input stream, put them back on it.
data "aws_iam_policy_document" "dlq_redrive" {
  # The DLQ is SSE-SQS (no key rights); the streams may need the customer-managed key.
  source_policy_documents = data.aws_iam_policy_document.stream_key[*].json
  statement {
    sid = "TakeFailureRecordsFromTheDeadLetterQueue"
    # ChangeMessageVisibility: a message kept (records trimmed, a put failed) is made visible
    # again at once for the next run.
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]
    resources = [aws_sqs_queue.dlq.arn]
  }

  statement {
    sid       = "ReadFailedRecordsBackAndPutThemBack"
    actions   = ["kinesis:GetShardIterator", "kinesis:GetRecords", "kinesis:PutRecords"]
    resources = [var.input_stream_arn]
  }

}

resource "aws_iam_policy" "dlq_redrive" {
  name        = "${var.function_name}-dlq-redrive"
  description = "Replay the dead-letter queue of ${var.function_name} onto its input stream (deployment/redrive.py)."
  policy      = data.aws_iam_policy_document.dlq_redrive.json
}
