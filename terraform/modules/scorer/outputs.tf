output "function_name" {
  description = "Name of the scorer function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the scorer function."
  value       = aws_lambda_function.this.arn
}

output "role_arn" {
  description = "ARN of the scorer's execution role."
  value       = aws_iam_role.this.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the scorer."
  value       = aws_cloudwatch_log_group.this.name
}

output "package_s3_uri" {
  description = "s3:// URI of the deployed zip (\"\" for Image)."
  value       = local.is_zip ? "s3://${var.models_bucket}/${local.zip_key}" : ""
}

output "dlq_url" {
  description = "URL of the dead-letter queue."
  value       = aws_sqs_queue.dlq.url
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "ecr_repository_url" {
  description = "URL of the ECR repository."
  value       = one(aws_ecr_repository.this[*].repository_url) == null ? "" : one(aws_ecr_repository.this[*].repository_url)
}

output "event_source_mapping_uuid" {
  description = "UUID of the Kinesis event source mapping."
  value       = aws_lambda_event_source_mapping.this.uuid
}

output "alias_name" {
  description = "Alias the event source mapping invokes."
  value       = aws_lambda_alias.live.name
}

output "alias_arn" {
  description = "ARN of the alias the event source mapping invokes."
  value       = aws_lambda_alias.live.arn
}

output "model_deployer_policy_arn" {
  description = "ARN of the least-privilege policy for model rollouts."
  value       = aws_iam_policy.model_deployer.arn
}

output "dlq_redrive_policy_arn" {
  description = "ARN of the least-privilege policy for make redrive (the DLQ back onto the input stream)."
  value       = aws_iam_policy.dlq_redrive.arn
}
