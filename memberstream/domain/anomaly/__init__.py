"""Anomaly detectors: bots, fraud signals and review spam (see ``docs`` in each module)."""
