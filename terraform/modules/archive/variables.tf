variable "data_bucket" {
  type        = string
  description = "Name of the data bucket: the archive, the labels and the Athena results live in it."
}

variable "data_bucket_arn" {
  type        = string
  description = "ARN of the data bucket."
}

variable "delivery_streams" {
  type = map(object({
    name              = string
    source_stream_arn = string
  }))
  description = "Firehose delivery streams by archive name (verdicts, observations): the delivery stream's name and the Kinesis stream it reads. Each writes gzip JSON lines under <archive_prefix><key>/dt=YYYY-MM-DD/hour=HH/."
}

variable "create_delivery_streams" {
  type        = bool
  description = "Create the Firehose delivery streams, their roles and log groups (on emulators a local pump reads them: emulation/firehose_pump.py)."
  default     = true
}

variable "create_query_catalog" {
  type        = bool
  description = "Create the Glue database and tables and the Athena workgroup (false on LocalStack Community, which has neither Glue nor Athena)."
  default     = true
}

variable "archive_prefix" {
  type        = string
  description = "Key prefix of the archive in the data bucket, ending in \"/\"."
  default     = "archive/"

  validation {
    condition     = can(regex("^[a-z0-9-]+/$", var.archive_prefix))
    error_message = "archive_prefix must be one lower-case path segment ending in \"/\", e.g. \"archive/\"."
  }
}

variable "error_prefix" {
  type        = string
  description = "Key prefix of the records Firehose could not deliver or process, ending in \"/\"."
  default     = "archive-errors/"

  validation {
    condition     = can(regex("^[a-z0-9-]+/$", var.error_prefix))
    error_message = "error_prefix must be one lower-case path segment ending in \"/\", e.g. \"archive-errors/\"."
  }
}

variable "labels_prefix" {
  type        = string
  description = "Key prefix of the lab's label objects in the data bucket (the labels table reads it)."
  default     = "labels/"
}

variable "buffering_size_mb" {
  type        = number
  description = "Firehose buffering hint: write an object when this many MiB are buffered (1..128)."

  validation {
    condition     = var.buffering_size_mb >= 1 && var.buffering_size_mb <= 128
    error_message = "buffering_size_mb must be between 1 and 128."
  }
}

variable "buffering_interval_s" {
  type        = number
  description = "Firehose buffering hint: write an object at least this often, seconds (0..900)."

  validation {
    condition     = var.buffering_interval_s >= 0 && var.buffering_interval_s <= 900
    error_message = "buffering_interval_s must be between 0 and 900."
  }
}

variable "stream_kms_key_arn" {
  type        = string
  description = "ARN of a customer-managed key encrypting the source streams (the delivery roles get Decrypt through Kinesis), or null for the AWS-managed aws/kinesis key."
  default     = null
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the delivery streams' CloudWatch log groups, days."
}

variable "database_name" {
  type        = string
  description = "Glue Data Catalog database of the archive tables (lower case, letters, digits, underscores)."

  validation {
    condition     = can(regex("^[a-z0-9_]{1,255}$", var.database_name))
    error_message = "database_name must be lower-case letters, digits and underscores."
  }
}

variable "tables" {
  type = map(object({
    description = string
    prefix      = string
    partitioned = bool
    columns = list(object({
      name = string
      type = string
    }))
  }))
  description = "Glue tables by name: key prefix in the data bucket, columns (Hive types), and whether the prefix holds dt=YYYY-MM-DD/hour=HH/ partitions (projected, so no crawler)."
}

variable "projection_start_date" {
  type        = string
  description = "First dt (YYYY-MM-DD) the partition projection enumerates; queries bound dt anyway."

  validation {
    condition     = can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", var.projection_start_date))
    error_message = "projection_start_date must be YYYY-MM-DD."
  }
}

variable "workgroup_name" {
  type        = string
  description = "Name of the Athena workgroup monitoring queries run in."
}

variable "results_prefix" {
  type        = string
  description = "Key prefix of the Athena query results in the data bucket, ending in \"/\"."
  default     = "athena-results/"
}

variable "results_kms_key_arn" {
  type        = string
  description = "Customer-managed KMS key for Athena results (SSE_KMS), or null for SSE_S3."
  default     = null
}

variable "bytes_scanned_cutoff_per_query" {
  type        = number
  description = "Athena cancels a query of the workgroup that scans more bytes than this (at least 10 MiB)."

  validation {
    condition     = var.bytes_scanned_cutoff_per_query >= 10485760
    error_message = "bytes_scanned_cutoff_per_query must be at least 10485760 (10 MiB), Athena's minimum."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Let terraform destroy delete the workgroup with its saved queries (emulators)."
}
