locals {
  use_emulator = var.aws_endpoint_url != null
}

provider "aws" {
  region = var.aws_region

  # Emulators (moto, LocalStack) accept any credentials and have no metadata service,
  # so validation is skipped only when an endpoint is set; real AWS keeps every check.
  access_key                  = local.use_emulator ? "test" : null
  secret_key                  = local.use_emulator ? "test" : null
  s3_use_path_style           = local.use_emulator
  skip_credentials_validation = local.use_emulator
  skip_metadata_api_check     = local.use_emulator
  skip_region_validation      = local.use_emulator

  # Every service this stack talks to goes to the emulator when an endpoint is set.
  dynamic "endpoints" {
    for_each = local.use_emulator ? [var.aws_endpoint_url] : []
    content {
      athena     = endpoints.value
      cloudwatch = endpoints.value
      ecr        = endpoints.value
      firehose   = endpoints.value
      glue       = endpoints.value
      iam        = endpoints.value
      kinesis    = endpoints.value
      kms        = endpoints.value
      lambda     = endpoints.value
      logs       = endpoints.value
      s3         = endpoints.value
      sns        = endpoints.value
      sqs        = endpoints.value
      sts        = endpoints.value
    }
  }

  # Not on emulators: moto's CreateStream drops tags, which would leave a permanent plan diff
  # on both streams (tags only matter for cost allocation on AWS anyway).
  default_tags {
    tags = local.use_emulator ? {} : merge(
      {
        Project     = var.project
        Environment = var.environment
        ManagedBy   = "terraform"
      },
      var.tags,
    )
  }
}
