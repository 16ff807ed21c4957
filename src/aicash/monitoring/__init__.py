"""Monitoring: drift verdicts over the prediction log, live outcomes, alert rules, canary judgement, retraining.

The Evidently report and the drift job that composes it live in the `monitoring` package, outside this domain
package; Evidently is imported only when a report runs, so `aicash --help` stays cheap.
"""
