# deployment/deploy.py writes every scalar output to .local/stack.env as `export <NAME>=value`
# (output name upper-cased), so keep these flat strings.

output "aws_region" {
  description = "Region of the stack."
  value       = var.aws_region
}

output "data_bucket" {
  description = "Bucket for dataset copies and late labels (labels/...)."
  value       = module.storage.bucket_names["data"]
}

output "mlflow_bucket" {
  description = "Bucket for MLflow artifacts."
  value       = module.storage.bucket_names["mlflow"]
}

output "models_bucket" {
  description = "Bucket for model bundles (mushroom-classifier/<version>/) and the Lambda zip (lambda/)."
  value       = module.storage.bucket_names["models"]
}

output "input_stream_name" {
  description = "Input stream (observations)."
  value       = module.streams.names["input"]
}

output "input_stream_arn" {
  description = "ARN of the input stream."
  value       = module.streams.arns["input"]
}

output "output_stream_name" {
  description = "Output stream (verdicts)."
  value       = module.streams.names["output"]
}

output "output_stream_arn" {
  description = "ARN of the output stream."
  value       = module.streams.arns["output"]
}

output "function_name" {
  description = "Name of the scorer Lambda."
  value       = module.scorer.function_name
}

output "function_arn" {
  description = "ARN of the scorer Lambda."
  value       = module.scorer.function_arn
}

output "function_role_arn" {
  description = "ARN of the scorer's execution role."
  value       = module.scorer.role_arn
}

output "log_group_name" {
  description = "Log group of the scorer."
  value       = module.scorer.log_group_name
}

output "lambda_package_s3_uri" {
  description = "s3:// URI of the deployed Lambda zip (\"\" for package_type = Image)."
  value       = module.scorer.package_s3_uri
}

output "function_alias" {
  description = "Alias of the scorer that the event source mapping invokes (moved by make rollout)."
  value       = module.scorer.alias_name
}

output "function_alias_arn" {
  description = "ARN of the alias the event source mapping invokes."
  value       = module.scorer.alias_arn
}

output "model_deployer_policy_arn" {
  description = "Least-privilege policy for whatever rolls out models (deployment/rollout.py)."
  value       = module.scorer.model_deployer_policy_arn
}

output "dlq_redrive_policy_arn" {
  description = "ARN of the least-privilege policy for make redrive (the DLQ back onto the input stream)."
  value       = module.scorer.dlq_redrive_policy_arn
}

output "event_source_mapping_uuid" {
  description = "UUID of the Kinesis event source mapping."
  value       = module.scorer.event_source_mapping_uuid
}

output "dlq_url" {
  description = "URL of the scorer's dead-letter queue."
  value       = module.scorer.dlq_url
}

output "dlq_arn" {
  description = "ARN of the scorer's dead-letter queue."
  value       = module.scorer.dlq_arn
}

output "ecr_repository_url" {
  description = "ECR repository for the scorer image."
  value       = module.scorer.ecr_repository_url
}

output "sns_topic_arn" {
  description = "ARN of the alert topic."
  value       = module.alerting.topic_arn
}

output "unknown_rate_alarm_name" {
  description = "Alarm on the UnknownRate monitoring metric."
  value       = module.alerting.alarm_names["unknown_rate"]
}

output "false_edible_rate_alarm_name" {
  description = "Alarm on the FalseEdibleRate monitoring metric."
  value       = module.alerting.alarm_names["false_edible_rate"]
}

output "scorer_errors_alarm_name" {
  description = "Alarm on the scorer's Lambda Errors."
  value       = module.alerting.scorer_errors_alarm_name
}

output "monitor_lag_alarm_name" {
  description = "Ops alarm on the monitor's own lag (MonitorLagMs); not a retraining trigger."
  value       = module.alerting.monitor_lag_alarm_name
}

output "metrics_namespace" {
  description = "Namespace of the monitoring metrics."
  value       = var.metrics_namespace
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the monitoring metrics and alarms."
  value       = aws_cloudwatch_dashboard.monitoring.dashboard_name
}

output "archive_verdicts_prefix" {
  description = "Key prefix of the archived verdicts in the data bucket (dt=YYYY-MM-DD/hour=HH/*.gz below it)."
  value       = module.archive.prefixes["verdicts"]
}

output "archive_observations_prefix" {
  description = "Key prefix of the archived observations in the data bucket (dt=YYYY-MM-DD/hour=HH/*.gz below it)."
  value       = module.archive.prefixes["observations"]
}

output "archive_verdicts_delivery_stream" {
  description = "Firehose delivery stream archiving the verdict stream (\"\" when not created)."
  value       = lookup(module.archive.delivery_stream_names, "verdicts", "")
}

output "archive_observations_delivery_stream" {
  description = "Firehose delivery stream archiving the observation stream (\"\" when not created)."
  value       = lookup(module.archive.delivery_stream_names, "observations", "")
}

output "archive_database" {
  description = "Glue database of the archive tables (\"\" when not created)."
  value       = module.archive.database_name
}

output "archive_verdicts_table" {
  description = "Glue table over the archived verdicts (\"\" when not created)."
  value       = lookup(module.archive.table_names, "verdicts", "")
}

output "archive_observations_table" {
  description = "Glue table over the archived observations (\"\" when not created)."
  value       = lookup(module.archive.table_names, "observations", "")
}

output "archive_labels_table" {
  description = "Glue table over the labels (\"\" when not created)."
  value       = lookup(module.archive.table_names, "labels", "")
}

output "athena_workgroup" {
  description = "Athena workgroup for monitoring queries (\"\" when not created)."
  value       = module.archive.workgroup_name
}

output "athena_results_location" {
  description = "Where the workgroup writes query results (SSE encrypted)."
  value       = module.archive.results_location
}

output "archive_label_events_table" {
  description = "Glue table over the labels each monitoring window received (\"\" when not created)."
  value       = lookup(module.archive.table_names, "label_events", "")
}
