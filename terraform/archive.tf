# The durable archive (modules/archive): verdicts and observations copied from their streams to
# the data bucket by Firehose, and the Glue tables and Athena workgroup monitoring queries.
#
# The columns follow the wire contracts (docs/architecture.md): the verdict record of
# lambda_function/service.py and the features of lambda_function/schema.py, in their order.
# tests/unit/deployment/test_terraform_archive.py holds them equal to the Python definitions.

locals {
  archive_feature_columns = [
    { name = "cap_diameter", type = "double" },
    { name = "cap_shape", type = "string" },
    { name = "cap_surface", type = "string" },
    { name = "cap_color", type = "string" },
    { name = "does_bruise_or_bleed", type = "string" },
    { name = "gill_attachment", type = "string" },
    { name = "gill_spacing", type = "string" },
    { name = "gill_color", type = "string" },
    { name = "stem_height", type = "double" },
    { name = "stem_width", type = "double" },
    { name = "stem_root", type = "string" },
    { name = "stem_surface", type = "string" },
    { name = "stem_color", type = "string" },
    { name = "veil_type", type = "string" },
    { name = "veil_color", type = "string" },
    { name = "has_ring", type = "string" },
    { name = "ring_type", type = "string" },
    { name = "spore_print_color", type = "string" },
    { name = "habitat", type = "string" },
    { name = "season", type = "string" },
  ]
  archive_tables = {
    verdicts = {
      description = "One line per verdict record as the scorer wrote it (at-least-once: deduplicate on input_sequence_number)."
      prefix      = "archive/verdicts/"
      partitioned = true
      columns = [
        { name = "mushroom_id", type = "string" },
        { name = "status", type = "string" },
        { name = "verdict", type = "string" },
        { name = "p_poisonous", type = "double" },
        { name = "model_name", type = "string" },
        { name = "model_version", type = "string" },
        { name = "input_sequence_number", type = "string" },
        { name = "scored_at", type = "string" },
        { name = "errors", type = "array<struct<field:string,message:string>>" },
        # Absent unless the misread check made the verdict unknown; a code or a number as text.
        { name = "misread", type = "struct<field:string,value:string>" },
        # Absent unless the function version has a shadow bundle (scored records only).
        { name = "shadow", type = "struct<model_version:string,verdict:string,p_poisonous:double,error:string>" },
      ]
    }
    observations = {
      description = "One line per input record as the producer put it (invalid records included, as they came)."
      prefix      = "archive/observations/"
      partitioned = true
      columns     = concat([{ name = "mushroom_id", type = "string" }], local.archive_feature_columns)
    }
    # Written by the monitoring cycle (monitoring/archive.py): each window's labels, one line
    # per id, so that SQL sees an id's label history (corrections).
    label_events = {
      description = "The labels each monitoring window received, one line per id: mushroom_id, label, received_in (the window's end), source_key (the window), waiting (no verdict in the archive yet)."
      prefix      = "archive/label-events/"
      partitioned = true
      columns = [
        { name = "mushroom_id", type = "string" },
        { name = "label", type = "string" },
        { name = "received_in", type = "string" },
        { name = "source_key", type = "string" },
        { name = "waiting", type = "boolean" },
      ]
    }
    labels = {
      description = "The lab's label lines (labels/*.jsonl): mushroom_id, label p or e, optional features and species_id."
      prefix      = "labels/"
      partitioned = false
      columns = concat(
        [{ name = "mushroom_id", type = "string" }, { name = "label", type = "string" }],
        local.archive_feature_columns,
        [{ name = "species_id", type = "int" }],
      )
    }
  }
}

module "archive" {
  source = "./modules/archive"

  data_bucket     = module.storage.bucket_names["data"]
  data_bucket_arn = module.storage.bucket_arns["data"]
  delivery_streams = {
    verdicts     = { name = "${var.name_prefix}mushroom-verdicts-archive", source_stream_arn = module.streams.arns["output"] }
    observations = { name = "${var.name_prefix}mushroom-observations-archive", source_stream_arn = module.streams.arns["input"] }
  }
  create_delivery_streams = var.archive_delivery_streams_enabled
  create_query_catalog    = var.archive_query_catalog_enabled
  buffering_size_mb       = var.archive_buffering_size_mb
  buffering_interval_s    = var.archive_buffering_interval_s
  stream_kms_key_arn      = startswith(var.stream_kms_key_id, "arn:") ? var.stream_kms_key_id : null
  log_retention_days      = var.log_retention_days

  database_name                  = "${replace(var.name_prefix, "-", "_")}mushroom_archive"
  tables                         = local.archive_tables
  projection_start_date          = var.archive_projection_start_date
  workgroup_name                 = "${var.name_prefix}mushroom-monitoring"
  bytes_scanned_cutoff_per_query = var.athena_bytes_scanned_cutoff_per_query
  force_destroy                  = local.disposable
}
