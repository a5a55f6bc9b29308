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
