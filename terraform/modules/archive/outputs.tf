output "delivery_stream_names" {
  description = "Firehose delivery stream names by archive name (empty when not created)."
  value       = { for key, stream in aws_kinesis_firehose_delivery_stream.this : key => stream.name }
}

output "delivery_role_arns" {
  description = "Delivery roles by archive name."
  value       = { for key, role in aws_iam_role.delivery : key => role.arn }
}

output "prefixes" {
  description = "Key prefix of each archive in the data bucket (dt=YYYY-MM-DD/hour=HH/ folders below it)."
  value       = { for key, _ in var.delivery_streams : key => "${var.archive_prefix}${key}/" }
}

output "database_name" {
  description = "Glue database of the archive tables (\"\" when not created)."
  value       = var.create_query_catalog ? aws_glue_catalog_database.this[0].name : ""
}

output "table_names" {
  description = "Glue table names by table key (empty when not created)."
  value       = { for key, table in aws_glue_catalog_table.this : key => table.name }
}

output "workgroup_name" {
  description = "Athena workgroup (\"\" when not created)."
  value       = var.create_query_catalog ? aws_athena_workgroup.this[0].name : ""
}

output "results_location" {
  description = "Where Athena writes query results (s3:// URI)."
  value       = "s3://${var.data_bucket}/${var.results_prefix}"
}
