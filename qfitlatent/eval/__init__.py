"""Evaluation: baselines, metrics, the `evaluate` command and the model-card figures."""
