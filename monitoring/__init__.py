"""The monitoring tools' home: the Evidently drift report and the drift job (`aicash monitor drift`), and the
Prometheus alert rules (`alerts.yml`, `resource-alerts.yml`), the Grafana dashboard and the cron schedule (`crontab`)
that the Pulumi program and docs/monitoring.md use."""
