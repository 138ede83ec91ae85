"""Domain policies: RFM and membership tiers, interest, the taxonomy, anomaly detectors,
review summaries. Plain code over schemas, numpy and pydantic: no Faust, no ONNX
Runtime, no aiokafka (an import-linter contract holds it so)."""
