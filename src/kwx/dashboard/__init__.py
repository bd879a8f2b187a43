"""Monitoring (issue 17): the read-only dashboard over the store and the alerts.

``queries``, ``pnl``, ``calibration`` and ``readiness`` read the store (pure SQL and the
project's metric functions); ``app`` serves them as pages; ``alerts`` evaluates conditions,
fires each once and sends it to a webhook.
"""
