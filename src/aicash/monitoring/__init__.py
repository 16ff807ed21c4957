"""Monitoring: drift reports over the prediction log, live outcomes, alert rules, canary judgement, retraining.

Evidently is imported only inside `aicash.monitoring.drift`'s functions, so importing this package stays cheap.
"""
