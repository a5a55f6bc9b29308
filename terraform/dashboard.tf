# CloudWatch dashboard of the monitoring metrics: one chart per figure over time, every model
# version as its own line (the ModelVersion dimension), alarm thresholds as lines, and the
# alarms' states. The monitor publishes each window's figures once per cycle (monitoring/).

locals {
  # The monitoring metrics' CloudWatch names, as monitoring/metrics.py publishes them
  # (METRIC_NAMES; tests/unit/deployment/test_terraform_dashboard.py keeps them equal).
  metric_names = {
    records           = "Records"
    unknown_rate      = "UnknownRate"
    rejected_rate     = "RejectedRate"
    false_edible_rate = "FalseEdibleRate"
    decision_accuracy = "DecisionAccuracy"
    drift_share       = "DriftShare"
  }
  model_version_dimension = "ModelVersion"
  dashboard_period        = var.alarm_period_seconds

  # Figure -> chart title, statistic and the thresholds of the alarms on it.
  dashboard_figures = [
    { key = "records", title = "Records per window", stat = "Sum", thresholds = [] },
    { key = "unknown_rate", title = "Unknown rate (guard: unlike any trained species)", stat = "Maximum", thresholds = [var.unknown_rate_threshold] },
    { key = "rejected_rate", title = "Rejected rate (input contract)", stat = "Maximum", thresholds = [] },
    { key = "false_edible_rate", title = "False-edible rate (labelled poisonous called edible)", stat = "Maximum", thresholds = [var.false_edible_rate_threshold] },
    { key = "decision_accuracy", title = "Decision accuracy (labelled; unknown = do not eat)", stat = "Average", thresholds = [] },
    { key = "drift_share", title = "Drift share (features drifted vs. the reference)", stat = "Maximum", thresholds = [] },
  ]

  figure_widgets = [
    for i, figure in local.dashboard_figures : {
      type   = "metric"
      x      = (i % 2) * 12
      y      = 3 + floor(i / 2) * 6
      width  = 12
      height = 6
      properties = {
        title  = figure.title
        region = var.aws_region
        view   = "timeSeries"
        period = local.dashboard_period
        stat   = figure.stat
        metrics = [
          [var.metrics_namespace, local.metric_names[figure.key], { id = "all", label = "all versions" }],
          [{
            id         = "byversion"
            expression = "SEARCH('{${var.metrics_namespace},${local.model_version_dimension}} MetricName=\"${local.metric_names[figure.key]}\"', '${figure.stat}', ${local.dashboard_period})"
            label      = "version"
          }],
        ]
        annotations = {
          horizontal = [for value in figure.thresholds : { label = "alarm threshold", value = value }]
        }
        yAxis = { left = { min = 0 } }
      }
    }
  ]
}

locals {
  # A shadow model against the champion on the same records (monitoring/shadow.py publishes
  # these with the ModelRole dimension; tests/unit/deployment/test_terraform_dashboard.py keeps
  # the names equal): one line per role, and the shadow's start, promotion and discard.
  role_dimension      = "ModelRole"
  shadow_role_metrics = ["DecisionAccuracy", "FalseEdibleRate", "Coverage", "UnknownRate"]
  shadow_disagreement = "DisagreementRate"
  shadow_markers      = ["ShadowStarted", "ShadowPromoted", "ShadowDiscarded"]
  shadow_top          = 3 + ceil(length(local.dashboard_figures) / 2) * 6

  shadow_widgets = concat(
    [
      for i, name in local.shadow_role_metrics : {
        type   = "metric"
        x      = (i % 2) * 12
        y      = local.shadow_top + floor(i / 2) * 6
        width  = 12
        height = 6
        properties = {
          title  = "${name}: champion and shadow on the same records (since the shadow started)"
          region = var.aws_region
          view   = "timeSeries"
          period = local.dashboard_period
          stat   = "Average"
          metrics = [
            [var.metrics_namespace, name, local.role_dimension, "champion", { label = "champion" }],
            [var.metrics_namespace, name, local.role_dimension, "shadow", { label = "shadow" }],
          ]
          yAxis = { left = { min = 0, max = 1 } }
        }
      }
    ],
    # The row below: the disagreement rate (left) and the decision markers (right).
    [
      for i, chart in [
        {
          title   = "Disagreement rate: shadow vs. champion verdicts (no label needed)"
          stat    = "Average"
          metrics = [[var.metrics_namespace, local.shadow_disagreement, local.role_dimension, "shadow"]]
          yAxis   = { left = { min = 0, max = 1 } }
        },
        {
          title   = "Shadow started / promoted / discarded (markers)"
          stat    = "Sum"
          metrics = [for name in local.shadow_markers : [var.metrics_namespace, name]]
        },
        ] : {
        type       = "metric"
        x          = i * 12
        y          = local.shadow_top + ceil(length(local.shadow_role_metrics) / 2) * 6
        width      = 12
        height     = 6
        properties = merge({ region = var.aws_region, view = "timeSeries", period = local.dashboard_period }, chart)
      }
    ],
  )
}

resource "aws_cloudwatch_dashboard" "monitoring" {
  dashboard_name = "${var.name_prefix}mushroom-monitoring"
  dashboard_body = jsonencode({
    widgets = concat(
      [
        {
          type   = "alarm"
          x      = 0
          y      = 0
          width  = 24
          height = 3
          properties = {
            title  = "Alarms"
            alarms = values(module.alerting.alarm_arns)
          }
        },
      ],
      local.figure_widgets,
      local.shadow_widgets,
    )
  })
}
