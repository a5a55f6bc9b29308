# ---------------------------------------------------------------------------------------------
# Target and naming
# ---------------------------------------------------------------------------------------------

variable "aws_region" {
  type        = string
  description = "AWS region to deploy into (emulators accept any; us-east-1 locally)."
  default     = "us-east-1"
}

variable "aws_endpoint_url" {
  type        = string
  description = "Endpoint of an AWS emulator (moto, LocalStack), e.g. http://127.0.0.1:5000. null = real AWS."
  default     = null
}

variable "project" {
  type        = string
  description = "Project name, first part of bucket names and a tag on every resource."
  default     = "mushroom"
}

variable "environment" {
  type        = string
  description = "Environment name (local, dev, prod): part of bucket names and a tag."
  default     = "local"
}

variable "name_prefix" {
  type        = string
  description = "Prefix for stream, function, queue, topic, repository and alarm names (\"\" locally, e.g. \"prod-\" on a shared account)."
  default     = ""
}

variable "bucket_suffix" {
  type        = string
  description = "Suffix that makes S3 bucket names globally unique on AWS (e.g. \"-123456789012\"); \"\" locally."
  default     = ""
}

variable "tags" {
  type        = map(string)
  description = "Extra tags added to every resource."
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# Storage and streams
# ---------------------------------------------------------------------------------------------

variable "force_destroy_buckets" {
  type        = bool
  description = "Let terraform destroy delete non-empty buckets (true for emulators, false for real data)."
  default     = false
}

variable "s3_lifecycle_rules_enabled" {
  type        = bool
  description = "Lifecycle rules on the buckets (expire non-current versions, abort stale uploads); moto is slow with them."
  default     = true
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days after which non-current object versions are deleted."
  default     = 90
}

variable "input_shard_count" {
  type        = number
  description = "Shards of the input stream (mushroom-observations)."
  default     = 1
}

variable "output_shard_count" {
  type        = number
  description = "Shards of the output stream (mushroom-verdicts)."
  default     = 1
}

variable "stream_retention_hours" {
  type        = number
  description = "Retention period of both Kinesis streams, in hours (24..8760)."
  default     = 24

  validation {
    condition     = var.stream_retention_hours >= 24 && var.stream_retention_hours <= 8760
    error_message = "stream_retention_hours must be between 24 and 8760."
  }
}

variable "s3_deny_insecure_transport" {
  type        = bool
  description = "Deny every S3 request to the project's buckets that is not made over TLS. Only the emulators, which serve plain HTTP, turn it off."
  default     = true
}

variable "stream_kms_key_id" {
  type        = string
  description = "KMS key for Kinesis server-side encryption: the AWS-managed alias/aws/kinesis (default), or the ARN of a customer-managed key, which the scorer is then granted Decrypt and GenerateDataKey on."
  default     = "alias/aws/kinesis"

  validation {
    # An alias other than the AWS-managed one cannot be granted in IAM by ARN: ask for the key ARN.
    condition     = var.stream_kms_key_id == "alias/aws/kinesis" || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.stream_kms_key_id))
    error_message = "stream_kms_key_id must be \"alias/aws/kinesis\" or a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)."
  }
}

# ---------------------------------------------------------------------------------------------
# Scorer Lambda
# ---------------------------------------------------------------------------------------------

variable "package_type" {
  type        = string
  description = "Lambda package type: Image (container image from ECR, AWS) or Zip (emulators without container images)."
  default     = "Zip"

  validation {
    condition     = contains(["Image", "Zip"], var.package_type)
    error_message = "package_type must be \"Image\" or \"Zip\"."
  }
}

variable "image_uri" {
  type        = string
  description = "Container image for package_type = Image, pinned by digest (<repo>@sha256:...), never :latest."
  default     = ""
}

variable "lambda_zip_path" {
  type        = string
  description = "Local path of the Lambda zip for package_type = Zip; uploaded to s3://<models-bucket>/lambda/<file name>."
  default     = ""
}

variable "model_bundle_uri" {
  type        = string
  description = "MODEL_BUNDLE_URI when the function is created: s3://<models-bucket>/mushroom-classifier/<version>/ (\"\" before the first model); make rollout changes it later, Terraform ignores it."
  default     = ""
}

variable "model_version" {
  type        = string
  description = "Registered model version served at creation when model_bundle_uri is \"\" (later: make rollout)."
  default     = ""
}

variable "create_ecr_repository" {
  type        = bool
  description = "Create the ECR repository (false on LocalStack Community, which has no ECR)."
  default     = true
}

variable "lambda_memory_mb" {
  type        = number
  description = "Memory of the scorer function, MB (also scales its CPU)."
  default     = 1024
}

variable "lambda_timeout_s" {
  type        = number
  description = "Timeout of the scorer function, seconds."
  default     = 60
}

variable "lambda_reserved_concurrency" {
  type        = number
  description = "Reserved concurrent executions of the scorer (-1 = unreserved; new AWS accounts cannot reserve)."
  default     = -1
}

variable "scorer_package" {
  type        = string
  description = "Flavour of the deployed scorer package (deployment/package_lambda.py --flavour): compiled (no LightGBM: serves only bundles with a compiled predictor for the function's platform) or lightgbm (with the LightGBM fallback). Set as SCORER_PACKAGE, which deployment/rollout.py checks before a rollout."
  default     = "compiled"

  validation {
    condition     = contains(["compiled", "lightgbm"], var.scorer_package)
    error_message = "scorer_package must be \"compiled\" or \"lightgbm\"."
  }
}

variable "log_level" {
  type        = string
  description = "LOG_LEVEL of the scorer (DEBUG, INFO, WARNING, ERROR)."
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the scorer's CloudWatch log group, days."
  default     = 14
}

# ---------------------------------------------------------------------------------------------
# Kinesis event source mapping
# ---------------------------------------------------------------------------------------------

variable "batch_size" {
  type        = number
  description = "Records per Lambda invocation (1..10000)."
  default     = 500

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000
    error_message = "batch_size must be between 1 and 10000."
  }
}

variable "maximum_batching_window_in_seconds" {
  type        = number
  description = "How long the mapping waits to fill a batch, seconds (0..300)."
  default     = 1
}

variable "starting_position" {
  type        = string
  description = "Where the mapping starts reading the input stream: TRIM_HORIZON or LATEST."
  default     = "TRIM_HORIZON"

  validation {
    condition     = contains(["TRIM_HORIZON", "LATEST"], var.starting_position)
    error_message = "starting_position must be TRIM_HORIZON or LATEST."
  }
}

variable "maximum_retry_attempts" {
  type        = number
  description = "Retries of a failing batch before its records go to the DLQ (-1 = until they expire, 0..10000)."
  default     = 2
}

variable "maximum_record_age_in_seconds" {
  type        = number
  description = "Records older than this go to the DLQ instead of being processed (-1 = no limit, 60..604800)."
  default     = 3600
}

variable "bisect_batch_on_function_error" {
  type        = bool
  description = "Split a failing batch in two and retry the halves, to isolate a poison record."
  default     = true
}

variable "parallelization_factor" {
  type        = number
  description = "Concurrent batches per shard (1..10)."
  default     = 1
}

# ---------------------------------------------------------------------------------------------
# Alerting
# ---------------------------------------------------------------------------------------------

variable "alert_email" {
  type        = string
  description = "Email subscribed to the alert topic (\"\" = no subscription)."
  default     = ""
}

variable "metrics_namespace" {
  type        = string
  description = "CloudWatch namespace of the monitoring metrics."
  default     = "MushroomClassifier"
}

variable "scorer_metrics_namespace" {
  type        = string
  description = "CloudWatch namespace of the scorer's own metrics (POWERTOOLS_METRICS_NAMESPACE)."
  default     = "MushroomScorer"
}

variable "unknown_rate_threshold" {
  type        = number
  description = "Alarm when the share of `unknown` verdicts exceeds this (0..1)."
  default     = 0.2
}

variable "false_edible_rate_threshold" {
  type        = number
  description = "Alarm when the share of labelled poisonous mushrooms called edible exceeds this (0..1)."
  default     = 0.01
}

variable "alarm_period_seconds" {
  type        = number
  description = "Period of the monitoring-metric alarms, seconds (monitoring publishes once per cycle)."
  default     = 300
}

variable "alarm_evaluation_periods" {
  type        = number
  description = "Periods the monitoring-metric alarms look back over."
  default     = 1
}

variable "alarm_datapoints_to_alarm" {
  type        = number
  description = "Breaching datapoints (within the evaluation periods) that put an alarm into ALARM."
  default     = 1
}

variable "scorer_errors_threshold" {
  type        = number
  description = "Alarm when the scorer's Lambda Errors sum over one period exceeds this."
  default     = 0
}

variable "scorer_errors_period_seconds" {
  type        = number
  description = "Period of the scorer-errors alarm, seconds."
  default     = 300
}

variable "monitor_lag_threshold_ms" {
  type        = number
  description = "Alarm when the monitoring job ends its read more than this many ms behind a stream's tip (MonitorLagMs). Default 1 hour: far below the 24-hour minimum stream retention, so a slow monitor is noticed long before records expire unread."
  default     = 3600000

  validation {
    condition     = var.monitor_lag_threshold_ms > 0
    error_message = "monitor_lag_threshold_ms must be positive."
  }
}

variable "monitor_lag_period_seconds" {
  type        = number
  description = "Period of the monitor-lag alarm, seconds. A period without any MonitorLagMs datapoint counts as breaching (the monitor has stopped), so it must be longer than the monitoring interval. Default 1 hour."
  default     = 3600

  validation {
    condition     = var.monitor_lag_period_seconds >= 60 && var.monitor_lag_period_seconds % 60 == 0
    error_message = "monitor_lag_period_seconds must be a multiple of 60, at least 60."
  }
}

# ---------------------------------------------------------------------------------------------
# Archive (Firehose to S3, Glue catalog, Athena)
# ---------------------------------------------------------------------------------------------

variable "archive_delivery_streams_enabled" {
  type        = bool
  description = "Create the Firehose delivery streams that archive verdicts and observations (on moto the local pump, emulation/firehose_pump.py, plays Firehose)."
  default     = true
}

variable "archive_query_catalog_enabled" {
  type        = bool
  description = "Create the Glue database and tables and the Athena workgroup over the archive (false on LocalStack Community, which has neither)."
  default     = true
}

variable "archive_buffering_size_mb" {
  type        = number
  description = "Firehose buffering hint: an archive object is written when this many MiB are buffered (1..128)."
  default     = 64
}

variable "archive_buffering_interval_s" {
  type        = number
  description = "Firehose buffering hint: an archive object is written at least this often, seconds (0..900)."
  default     = 300
}

variable "archive_projection_start_date" {
  type        = string
  description = "First day (YYYY-MM-DD) the archive tables' partition projection enumerates."
  default     = "2026-01-01"
}

variable "athena_bytes_scanned_cutoff_per_query" {
  type        = number
  description = "Athena cancels a monitoring query that scans more than this many bytes (at least 10 MiB). Default 10 GiB."
  default     = 10737418240
}
