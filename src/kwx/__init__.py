"""kwx: an agent that trades Kalshi's daily-high temperature bracket markets."""

__version__ = "0.1.0"
