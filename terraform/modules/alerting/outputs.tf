output "topic_arn" {
  description = "ARN of the alert topic."
  value       = aws_sns_topic.alerts.arn
}

output "alarm_names" {
  description = "Monitoring-metric alarm names by key."
  value       = { for key, alarm in aws_cloudwatch_metric_alarm.monitoring : key => alarm.alarm_name }
}

output "scorer_errors_alarm_name" {
  description = "Name of the scorer-errors alarm."
  value       = aws_cloudwatch_metric_alarm.scorer_errors.alarm_name
}

output "monitor_lag_alarm_name" {
  description = "Name of the monitor-lag alarm."
  value       = aws_cloudwatch_metric_alarm.monitor_lag.alarm_name
}

output "alarm_arns" {
  description = "ARNs of the monitoring-metric alarms by key, and of the scorer-errors and monitor-lag alarms."
  value = merge(
    { for key, alarm in aws_cloudwatch_metric_alarm.monitoring : key => alarm.arn },
    {
      scorer_errors = aws_cloudwatch_metric_alarm.scorer_errors.arn
      monitor_lag   = aws_cloudwatch_metric_alarm.monitor_lag.arn
    },
  )
}
