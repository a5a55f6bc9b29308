# The durable archive: Firehose delivery streams copy the verdict and observation streams into
# the data bucket as gzip JSON lines under time-partitioned prefixes; a Glue database describes
# them (and the labels) with partition projection; an Athena workgroup queries them.

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  streams = var.create_delivery_streams ? var.delivery_streams : {}
  # The layout monitoring reads (docs/architecture.md, The archive): one prefix per stream,
  # one folder per UTC day and hour of arrival.
  prefixes = {
    for key, _ in var.delivery_streams : key => {
      data   = "${var.archive_prefix}${key}/dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/"
      errors = "${var.error_prefix}${key}/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/"
    }
  }
  log_stream_name = "DestinationDelivery"
}

# ---------------------------------------------------------------------------------------------
# Firehose: Kinesis stream -> gzip JSON lines in S3
# ---------------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "delivery" {
  #checkov:skip=CKV_AWS_158:Delivery errors name objects and error codes, no secrets; encrypted by CloudWatch by default, a CMK is not needed.
  #checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days); a year of delivery errors is not needed.
  for_each = local.streams

  name              = "/aws/kinesisfirehose/${each.value.name}"
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_stream" "delivery" {
  for_each = local.streams

  name           = local.log_stream_name
  log_group_name = aws_cloudwatch_log_group.delivery[each.key].name
}

data "aws_iam_policy_document" "firehose_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["firehose.amazonaws.com"]
    }
  }
}

# One role per delivery stream: it reads its own stream and writes only under its own prefixes.
resource "aws_iam_role" "delivery" {
  for_each = local.streams

  name               = "${each.value.name}-role"
  assume_role_policy = data.aws_iam_policy_document.firehose_assume.json
}

data "aws_iam_policy_document" "delivery" {
  for_each = local.streams

  statement {
    sid = "ReadSourceStream"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
    ]
    resources = [each.value.source_stream_arn]
  }

  statement {
    sid     = "WriteArchiveObjects"
    actions = ["s3:AbortMultipartUpload", "s3:PutObject"]
    resources = [
      "${var.data_bucket_arn}/${var.archive_prefix}${each.key}/*",
      "${var.data_bucket_arn}/${var.error_prefix}${each.key}/*",
    ]
  }

  # Bucket-level calls Firehose makes before and around multipart uploads.
  statement {
    sid       = "LocateBucket"
    actions   = ["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
    resources = [var.data_bucket_arn]
  }

  statement {
    sid       = "ListOwnPrefixes"
    actions   = ["s3:ListBucket"]
    resources = [var.data_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.archive_prefix}${each.key}/*", "${var.error_prefix}${each.key}/*"]
    }
  }

  statement {
    sid       = "WriteDeliveryLogs"
    actions   = ["logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.delivery[each.key].arn}:log-stream:${local.log_stream_name}"]
  }

  # A customer-managed stream key needs key rights; the AWS-managed aws/kinesis key does not.
  dynamic "statement" {
    for_each = var.stream_kms_key_arn == null ? [] : [var.stream_kms_key_arn]
    content {
      sid       = "DecryptSourceStreamThroughKinesis"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["kinesis.${data.aws_region.current.name}.amazonaws.com"]
      }
    }
  }

  # The bucket's default encryption (SSE-KMS with the AWS-managed aws/s3 key) encrypts the
  # objects: no key rights are needed for it.
}

resource "aws_iam_role_policy" "delivery" {
  for_each = local.streams

  name   = "${each.value.name}-policy"
  role   = aws_iam_role.delivery[each.key].id
  policy = data.aws_iam_policy_document.delivery[each.key].json
}

resource "aws_kinesis_firehose_delivery_stream" "this" {
  #checkov:skip=CKV_AWS_240:A delivery stream with a Kinesis source cannot enable server-side encryption; the source stream is SSE-KMS encrypted and the bucket encrypts every object (SSE-KMS).
  #checkov:skip=CKV_AWS_241:As CKV_AWS_240: encryption is the source stream's and the bucket's, not the delivery stream's.
  for_each = local.streams

  name        = each.value.name
  destination = "extended_s3"

  kinesis_source_configuration {
    kinesis_stream_arn = each.value.source_stream_arn
    role_arn           = aws_iam_role.delivery[each.key].arn
  }

  extended_s3_configuration {
    role_arn            = aws_iam_role.delivery[each.key].arn
    bucket_arn          = var.data_bucket_arn
    prefix              = local.prefixes[each.key].data
    error_output_prefix = local.prefixes[each.key].errors
    buffering_size      = var.buffering_size_mb
    buffering_interval  = var.buffering_interval_s
    compression_format  = "GZIP"

    # One record per line: Kinesis data are single JSON objects without a trailing newline.
    processing_configuration {
      enabled = true
      processors {
        type = "AppendDelimiterToRecord"
      }
    }

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.delivery[each.key].name
      log_stream_name = aws_cloudwatch_log_stream.delivery[each.key].name
    }
  }

  # The role must be able to read the stream when Firehose starts reading it.
  depends_on = [aws_iam_role_policy.delivery]
}

# ---------------------------------------------------------------------------------------------
# Glue Data Catalog: the archive and the labels as tables, partitions projected (no crawler)
# ---------------------------------------------------------------------------------------------

resource "aws_glue_catalog_database" "this" {
  count = var.create_query_catalog ? 1 : 0

  name        = var.database_name
  description = "Archived verdicts and observations, and the lab's labels (s3://${var.data_bucket})."
}

resource "aws_glue_catalog_table" "this" {
  for_each = var.create_query_catalog ? var.tables : {}

  name          = each.key
  database_name = aws_glue_catalog_database.this[0].name
  description   = each.value.description
  table_type    = "EXTERNAL_TABLE"

  parameters = merge(
    { EXTERNAL = "TRUE", classification = "json" },
    each.value.partitioned ? {
      "projection.enabled"          = "true"
      "projection.dt.type"          = "date"
      "projection.dt.format"        = "yyyy-MM-dd"
      "projection.dt.range"         = "${var.projection_start_date},NOW"
      "projection.dt.interval"      = "1"
      "projection.dt.interval.unit" = "DAYS"
      "projection.hour.type"        = "integer"
      "projection.hour.range"       = "0,23"
      "projection.hour.digits"      = "2"
      "storage.location.template"   = "s3://${var.data_bucket}/${each.value.prefix}dt=$${dt}/hour=$${hour}/"
    } : {},
  )

  dynamic "partition_keys" {
    for_each = each.value.partitioned ? ["dt", "hour"] : []
    content {
      name = partition_keys.value
      type = "string"
    }
  }

  storage_descriptor {
    location      = "s3://${var.data_bucket}/${each.value.prefix}"
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

    ser_de_info {
      name                  = "json"
      serialization_library = "org.openx.data.jsonserde.JsonSerDe"
      parameters = {
        # A malformed line reads as a row of nulls instead of failing the query: monitoring
        # counts such lines (the contract: a bad record never stops a batch).
        "ignore.malformed.json" = "true"
        "case.insensitive"      = "false"
      }
    }

    dynamic "columns" {
      for_each = each.value.columns
      content {
        name = columns.value.name
        type = columns.value.type
      }
    }
  }
}

# ---------------------------------------------------------------------------------------------
# Athena: one workgroup, its settings enforced, results encrypted, scans capped
# ---------------------------------------------------------------------------------------------

resource "aws_athena_workgroup" "this" {
  count = var.create_query_catalog ? 1 : 0

  name          = var.workgroup_name
  description   = "Monitoring queries over the archive (database ${var.database_name})."
  force_destroy = var.force_destroy

  # At least one tag of its own: moto 5.2.5 answers ListTagsForResource for an untagged
  # workgroup with "does not exist", which fails every apply (default_tags are off on emulators).
  tags = { Purpose = "mushroom-monitoring" }

  configuration {
    # Clients cannot override the result location, its encryption or the scan limit.
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.bytes_scanned_cutoff_per_query

    # Trino: monitoring's SQL is checked against Trino's dialect (one text for DuckDB and Athena).
    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location = "s3://${var.data_bucket}/${var.results_prefix}"
      encryption_configuration {
        encryption_option = var.results_kms_key_arn == null ? "SSE_S3" : "SSE_KMS"
        kms_key_arn       = var.results_kms_key_arn
      }
    }
  }
}
