output "names" {
  description = "Stream names by role."
  value       = { for role, stream in aws_kinesis_stream.this : role => stream.name }
}

output "arns" {
  description = "Stream ARNs by role."
  value       = { for role, stream in aws_kinesis_stream.this : role => stream.arn }
}
