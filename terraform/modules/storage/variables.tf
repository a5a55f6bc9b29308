variable "buckets" {
  type        = map(string)
  description = "Bucket names by purpose (data, mlflow, models)."
}

variable "force_destroy" {
  type        = bool
  description = "Allow destroying non-empty buckets."
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days after which non-current object versions are deleted."
}

variable "lifecycle_rules_enabled" {
  type        = bool
  description = "Expire non-current versions and abort stale multipart uploads."
}

variable "deny_insecure_transport" {
  type        = bool
  description = "Attach a bucket policy that denies every request not made over TLS (aws:SecureTransport)."
  default     = true
}
