# Mushroom scoring service: Kinesis -> Lambda (LightGBM) -> Kinesis, with S3 for data, MLflow
# artifacts and model bundles, a DLQ, and alarms on the monitoring metrics.
# The same files deploy to moto, LocalStack and AWS; only vars/*.tfvars and aws_endpoint_url differ.

locals {
  bucket_names = {
    for purpose in ["data", "mlflow", "models"] :
    purpose => "${var.project}-${var.environment}-${purpose}${var.bucket_suffix}"
  }
  function_name = "${var.name_prefix}mushroom-scorer"
  # The model served when the function is created: an explicit URI wins, else a registered
  # version's bundle in the models bucket. Later models are rolled out without Terraform.
  model_bundle_uri = (
    var.model_bundle_uri != "" ? var.model_bundle_uri :
    var.model_version != "" ? "s3://${local.bucket_names["models"]}/mushroom-classifier/${var.model_version}/" : ""
  )
  # Emulator state is disposable: let destroy remove non-empty buckets and repositories.
  disposable = var.force_destroy_buckets || var.aws_endpoint_url != null
}

module "storage" {
  source = "./modules/storage"

  buckets                            = local.bucket_names
  force_destroy                      = local.disposable
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  lifecycle_rules_enabled            = var.s3_lifecycle_rules_enabled
  deny_insecure_transport            = var.s3_deny_insecure_transport
}

module "streams" {
  source = "./modules/streams"

  streams = {
    input  = { name = "${var.name_prefix}mushroom-observations", shard_count = var.input_shard_count }
    output = { name = "${var.name_prefix}mushroom-verdicts", shard_count = var.output_shard_count }
  }
  retention_hours = var.stream_retention_hours
  kms_key_id      = var.stream_kms_key_id
}

module "scorer" {
  source = "./modules/scorer"

  function_name           = local.function_name
  ecr_repository_name     = "${var.name_prefix}mushroom-scorer"
  create_ecr_repository   = var.create_ecr_repository
  force_delete_repository = local.disposable
  dlq_name                = "${var.name_prefix}mushroom-scorer-dlq"

  package_type      = var.package_type
  image_uri         = var.image_uri
  lambda_zip_path   = var.lambda_zip_path
  models_bucket     = module.storage.bucket_names["models"]
  models_bucket_arn = module.storage.bucket_arns["models"]
  model_prefix      = "mushroom-classifier/"
  model_bundle_uri  = local.model_bundle_uri

  input_stream_arn   = module.streams.arns["input"]
  output_stream_arn  = module.streams.arns["output"]
  output_stream_name = module.streams.names["output"]
  metrics_namespace  = var.scorer_metrics_namespace
  stream_kms_key_arn = startswith(var.stream_kms_key_id, "arn:") ? var.stream_kms_key_id : null

  memory_mb            = var.lambda_memory_mb
  timeout_s            = var.lambda_timeout_s
  reserved_concurrency = var.lambda_reserved_concurrency
  log_level            = var.log_level
  scorer_package       = var.scorer_package
  log_retention_days   = var.log_retention_days

  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.maximum_batching_window_in_seconds
  starting_position                  = var.starting_position
  parallelization_factor             = var.parallelization_factor
  maximum_retry_attempts             = var.maximum_retry_attempts
  maximum_record_age_in_seconds      = var.maximum_record_age_in_seconds
  bisect_batch_on_function_error     = var.bisect_batch_on_function_error
}

module "alerting" {
  source = "./modules/alerting"

  topic_name        = "${var.name_prefix}mushroom-alerts"
  alert_email       = var.alert_email
  metrics_namespace = var.metrics_namespace
  metric_alarms = {
    unknown_rate = {
      alarm_name  = "${var.name_prefix}mushroom-unknown-rate-high"
      metric_name = local.metric_names.unknown_rate
      threshold   = var.unknown_rate_threshold
      description = "Too many mushrooms unlike any trained species (out-of-distribution): the data drifted; retrain."
    }
    false_edible_rate = {
      alarm_name  = "${var.name_prefix}mushroom-false-edible-rate-high"
      metric_name = local.metric_names.false_edible_rate
      threshold   = var.false_edible_rate_threshold
      description = "Labelled poisonous mushrooms were called edible above the tolerated rate: retrain."
    }
  }
  period_seconds      = var.alarm_period_seconds
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = var.alarm_datapoints_to_alarm

  function_name                = module.scorer.function_name
  scorer_errors_alarm_name     = "${var.name_prefix}mushroom-scorer-errors"
  scorer_errors_threshold      = var.scorer_errors_threshold
  scorer_errors_period_seconds = var.scorer_errors_period_seconds

  monitor_lag_alarm_name     = "${var.name_prefix}mushroom-monitor-lag-high"
  monitor_lag_threshold_ms   = var.monitor_lag_threshold_ms
  monitor_lag_period_seconds = var.monitor_lag_period_seconds
}
