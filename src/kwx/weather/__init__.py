"""The weather model: residual fit, baselines, measurement model, Monte Carlo."""
