variable "topic_name" {
  type        = string
  description = "Name of the SNS alert topic."
}

variable "alert_email" {
  type        = string
  description = "Email subscribed to the topic (\"\" = none)."
}

variable "metrics_namespace" {
  type        = string
  description = "Namespace of the monitoring metrics."
}

variable "metric_alarms" {
  type = map(object({
    alarm_name  = string
    metric_name = string
    threshold   = number
    description = string
  }))
  description = "Alarms on monitoring metrics (dimensionless), by key."
}

variable "period_seconds" {
  type        = number
  description = "Period of the monitoring-metric alarms, seconds."
}

variable "evaluation_periods" {
  type        = number
  description = "Evaluation periods of the monitoring-metric alarms."
}

variable "datapoints_to_alarm" {
  type        = number
  description = "Breaching datapoints that trigger ALARM."
}

variable "function_name" {
  type        = string
  description = "Scorer function watched by the errors alarm."
}

variable "scorer_errors_alarm_name" {
  type        = string
  description = "Name of the scorer-errors alarm."
}

variable "scorer_errors_threshold" {
  type        = number
  description = "Errors (sum per period) above which the alarm fires."
}

variable "scorer_errors_period_seconds" {
  type        = number
  description = "Period of the scorer-errors alarm, seconds."
}

variable "monitor_lag_alarm_name" {
  type        = string
  description = "Name of the monitor-lag alarm."
}

variable "monitor_lag_threshold_ms" {
  type        = number
  description = "MonitorLagMs (ms behind the streams' tips after a monitoring read) above which the alarm fires."
}

variable "monitor_lag_period_seconds" {
  type        = number
  description = "Period of the monitor-lag alarm, seconds; a period without a datapoint (monitor stopped) breaches."
}
