# Emulators (moto, LocalStack): disposable state, Zip package (no container images).
# deployment/deploy.py adds aws_endpoint_url, lambda_zip_path and model_bundle_uri.
environment           = "local"
name_prefix           = ""
bucket_suffix         = ""
package_type          = "Zip"
force_destroy_buckets = true
# moto keeps the provider polling lifecycle configurations for about a minute per bucket.
s3_lifecycle_rules_enabled = false
# The emulators serve plain HTTP, and moto enforces a bucket policy's Deny on object requests:
# the TLS-only policy would refuse every upload. AWS (vars/aws.tfvars) keeps the default, on.
s3_deny_insecure_transport = false

lambda_memory_mb = 1024
lambda_timeout_s = 60

batch_size                         = 500
maximum_batching_window_in_seconds = 1
starting_position                  = "TRIM_HORIZON"
maximum_retry_attempts             = 2
maximum_record_age_in_seconds      = 3600
bisect_batch_on_function_error     = true

unknown_rate_threshold      = 0.2
false_edible_rate_threshold = 0.01
alarm_period_seconds        = 60
alarm_evaluation_periods    = 1
alarm_datapoints_to_alarm   = 1

# The local pump (emulation/firehose_pump.py) writes an archive object every 10 s or 1 MiB.
archive_buffering_size_mb    = 1
archive_buffering_interval_s = 10
