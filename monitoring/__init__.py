"""The monitoring tools' home: the Evidently drift report and the drift job (`aicash monitor drift`), and the
Prometheus alert rules (`alerts.yml`) and cron schedule (`crontab`) the Pulumi program and the README use."""
