# Real AWS: container image from ECR pinned by digest (CD passes image_uri=<repo>@sha256:...).
# Set bucket_suffix (e.g. "-<account id>") so bucket names are globally unique.
aws_region            = "us-east-1"
environment           = "prod"
name_prefix           = ""
bucket_suffix         = ""
package_type          = "Image"
force_destroy_buckets = false

lambda_memory_mb   = 2048
lambda_timeout_s   = 60
log_retention_days = 30

batch_size                         = 500
maximum_batching_window_in_seconds = 1
starting_position                  = "LATEST"
maximum_retry_attempts             = 3
maximum_record_age_in_seconds      = 3600
bisect_batch_on_function_error     = true

unknown_rate_threshold      = 0.2
false_edible_rate_threshold = 0.01
alarm_period_seconds        = 3600
alarm_evaluation_periods    = 1
alarm_datapoints_to_alarm   = 1

archive_buffering_size_mb             = 64
archive_buffering_interval_s          = 300
athena_bytes_scanned_cutoff_per_query = 10737418240
