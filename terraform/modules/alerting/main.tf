# Alert topic and the alarms on the monitoring metrics and on scorer errors.

resource "aws_sns_topic" "alerts" {
  #checkov:skip=CKV_AWS_26:CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed aws/sns key; a CMK with a key policy for CloudWatch is not worth it for alert messages without secrets.
  name = var.topic_name
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alert_email == "" ? 0 : 1

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = var.alert_email
}

# Monitoring publishes each metric once per cycle without dimensions (and again with a
# ModelVersion dimension); the alarms watch the dimensionless series. No data = no verdicts to
# judge, which is not a breach.
resource "aws_cloudwatch_metric_alarm" "monitoring" {
  for_each = var.metric_alarms

  alarm_name          = each.value.alarm_name
  alarm_description   = each.value.description
  namespace           = var.metrics_namespace
  metric_name         = each.value.metric_name
  statistic           = "Maximum"
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  period              = var.period_seconds
  evaluation_periods  = var.evaluation_periods
  datapoints_to_alarm = var.datapoints_to_alarm
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}

resource "aws_cloudwatch_metric_alarm" "scorer_errors" {
  alarm_name          = var.scorer_errors_alarm_name
  alarm_description   = "The scorer Lambda raised errors (batches are retried, then go to the DLQ)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = var.function_name }
  statistic           = "Sum"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.scorer_errors_threshold
  period              = var.scorer_errors_period_seconds
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}

# The monitor's own health: how far behind the streams' tips its last read ended (MonitorLagMs,
# MillisBehindLatest max over shards and streams). An ops alarm: it notifies, it never triggers
# retraining (the monitor acts only on MONITORING_ALARM_NAMES, the model-quality alarms).
resource "aws_cloudwatch_metric_alarm" "monitor_lag" {
  alarm_name          = var.monitor_lag_alarm_name
  alarm_description   = "The monitoring job is falling behind the streams, or has stopped: records expire unread after the stream retention."
  namespace           = var.metrics_namespace
  metric_name         = "MonitorLagMs"
  statistic           = "Maximum"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.monitor_lag_threshold_ms
  period              = var.monitor_lag_period_seconds
  evaluation_periods  = 1
  # breaching, deliberately: a stopped monitor publishes nothing at all, and only missing data
  # counted as breaching catches it (notBreaching would stay OK forever). A running monitor
  # publishes MonitorLagMs every cycle, so the period must exceed the monitoring interval.
  # moto creates alarms in OK and never evaluates them, and the monitor evaluates only the
  # model-quality alarms, so this one never fires on the emulator.
  treat_missing_data = "breaching"
  alarm_actions      = [aws_sns_topic.alerts.arn]
  ok_actions         = [aws_sns_topic.alerts.arn]
}
