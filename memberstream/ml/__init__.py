"""The ML runtime (text encoder, heads, learned anomaly scorer, the inference stage, ONNX
export) and model training (:mod:`memberstream.ml.training`). Below the settings
assembly: takes its own settings sections, never :class:`~memberstream.config.Settings`."""
