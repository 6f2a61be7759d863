"""Streaming stage. Pure domain modules (entities, alerts, batching, ranking) import nothing from Kafka,
SQLAlchemy or ONNX Runtime; the Faust app and its adapters are built on them."""
