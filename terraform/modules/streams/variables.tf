variable "streams" {
  type = map(object({
    name        = string
    shard_count = number
  }))
  description = "Streams by role (input, output): name and shard count."
}

variable "retention_hours" {
  type        = number
  description = "Retention period of the streams, hours."
}

variable "kms_key_id" {
  type        = string
  description = "KMS key (alias or ARN) for server-side encryption."
}
