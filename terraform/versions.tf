terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.100.0 is the version in the offline filesystem mirror of these machines; stay within 5.x.
      version = ">= 5.60, < 6.0"
    }
  }

  # Local state; deployment/deploy.py passes -backend-config=path=... so that every target
  # (moto, localstack, aws) has its own state file under .local/terraform/<target>/.
  backend "local" {}
}
