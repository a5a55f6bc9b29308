# Input (observations) and output (verdicts) Kinesis streams, encrypted at rest.

resource "aws_kinesis_stream" "this" {
  #checkov:skip=CKV_AWS_185:Encrypted with the AWS-managed aws/kinesis key; a customer-managed key (cost, key policy) is optional via stream_kms_key_id.
  for_each = var.streams

  name             = each.value.name
  shard_count      = each.value.shard_count
  retention_period = var.retention_hours
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_id

  stream_mode_details {
    stream_mode = "PROVISIONED"
  }
}
