variable "function_name" {
  type        = string
  description = "Name of the Lambda function."
}

variable "ecr_repository_name" {
  type        = string
  description = "Name of the ECR repository for the container image."
}

variable "create_ecr_repository" {
  type        = bool
  description = "Create the ECR repository."
}

variable "force_delete_repository" {
  type        = bool
  description = "Let terraform destroy delete the repository with its images."
}

variable "dlq_name" {
  type        = string
  description = "Name of the SQS dead-letter queue."
}

variable "package_type" {
  type        = string
  description = "Image or Zip."
}

variable "image_uri" {
  type        = string
  description = "Container image (package_type = Image)."
}

variable "lambda_zip_path" {
  type        = string
  description = "Local zip path (package_type = Zip)."
}

variable "models_bucket" {
  type        = string
  description = "Bucket holding model bundles and the Lambda zip."
}

variable "models_bucket_arn" {
  type        = string
  description = "ARN of the models bucket."
}

variable "model_prefix" {
  type        = string
  description = "Key prefix of the model bundles the function may read (e.g. mushroom-classifier/)."
}

variable "model_bundle_uri" {
  type        = string
  description = "MODEL_BUNDLE_URI at creation; rollouts (deployment/rollout.py) own it afterwards."
}

variable "alias_name" {
  type        = string
  description = "Alias the event source mapping invokes; rollouts move it."
  default     = "live"
}

variable "input_stream_arn" {
  type        = string
  description = "ARN of the input stream."
}

variable "output_stream_arn" {
  type        = string
  description = "ARN of the output stream."
}

variable "output_stream_name" {
  type        = string
  description = "Name of the output stream (OUTPUT_STREAM_NAME)."
}

variable "metrics_namespace" {
  type        = string
  description = "Namespace of the scorer's own metrics (POWERTOOLS_METRICS_NAMESPACE)."
}

variable "stream_kms_key_arn" {
  type        = string
  description = "ARN of a customer-managed KMS key of the streams, or null for the AWS-managed aws/kinesis key (no key rights needed)."
  default     = null
}

variable "memory_mb" {
  type        = number
  description = "Memory, MB."
}

variable "timeout_s" {
  type        = number
  description = "Timeout, seconds."
}

variable "reserved_concurrency" {
  type        = number
  description = "Reserved concurrent executions (-1 = unreserved)."
}

variable "scorer_package" {
  type        = string
  description = "SCORER_PACKAGE environment variable: compiled or lightgbm (the package's flavour)."
}

variable "log_level" {
  type        = string
  description = "LOG_LEVEL environment variable."
}

variable "log_retention_days" {
  type        = number
  description = "Log group retention, days."
}

variable "batch_size" {
  type        = number
  description = "Records per invocation."
}

variable "maximum_batching_window_in_seconds" {
  type        = number
  description = "Batching window, seconds."
}

variable "starting_position" {
  type        = string
  description = "TRIM_HORIZON or LATEST."
}

variable "parallelization_factor" {
  type        = number
  description = "Concurrent batches per shard."
}

variable "maximum_retry_attempts" {
  type        = number
  description = "Retries before the DLQ."
}

variable "maximum_record_age_in_seconds" {
  type        = number
  description = "Maximum record age before the DLQ, seconds."
}

variable "bisect_batch_on_function_error" {
  type        = bool
  description = "Bisect failing batches."
}
