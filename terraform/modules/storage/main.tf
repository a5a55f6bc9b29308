# Private, encrypted, versioned S3 buckets: data (dataset copies, late labels), mlflow (artifacts),
# models (model bundles and the Lambda zip).

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Access logging needs a separate log bucket; CloudTrail data events cover audit on AWS.
  #checkov:skip=CKV_AWS_144:Cross-region replication is not needed: every object can be rebuilt from the dataset and MLflow.
  #checkov:skip=CKV2_AWS_62:No consumer reacts to S3 events; deployments are explicit (make deploy).
  for_each = var.buckets

  bucket        = each.value
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = aws_s3_bucket.this

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# TLS only: any request over plain HTTP is denied, whoever makes it.
data "aws_iam_policy_document" "tls_only" {
  for_each = var.deny_insecure_transport ? aws_s3_bucket.this : {}

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      each.value.arn,
      "${each.value.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "tls_only" {
  for_each = var.deny_insecure_transport ? aws_s3_bucket.this : {}

  bucket = each.value.id
  policy = data.aws_iam_policy_document.tls_only[each.key].json

  # The public access block must exist first, or S3 may judge the policy before it applies.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  rule {
    # SSE-KMS with the AWS-managed aws/s3 key; the bucket key keeps KMS request costs low.
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

# Optional because moto (5.2) answers GetBucketLifecycleConfiguration in a shape the provider
# keeps polling for about a minute per bucket (getmoto/moto#9708, #9729); on by default.
resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = var.lifecycle_rules_enabled ? aws_s3_bucket.this : {}

  bucket = each.value.id
  rule {
    id     = "expire-noncurrent-and-abort-uploads"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}
