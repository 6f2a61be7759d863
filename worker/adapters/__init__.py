"""Thin adapters between the pipeline and the outside world: PostgreSQL, ONNX Runtime bundles, Prometheus."""
