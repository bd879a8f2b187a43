"""Signals, execution policy and risk: from probabilities to order intents."""
