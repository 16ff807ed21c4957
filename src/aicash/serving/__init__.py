"""Serving domain: request schemas, API keys, rate limits, cache, canary routing, prediction log.

Framework-free: the BentoML service in `bentos/` wires these together.
"""
