"""Streaming stage: a Faust app serving bundles on Kafka, results in PostgreSQL.

``domain/`` is pure (intake, entities, alerts, micro-batch policy, ranking) and imports nothing from Kafka,
SQLAlchemy or ONNX Runtime; ``adapters/`` wrap the outside world (results store, candidate cache, model
holder, Prometheus metrics); ``paths/`` hold one module of batch logic per input topic; ``pipeline``
dispatches a batch to its path, ``runtime`` wires it all from the settings, and ``app`` is the Faust app.
The worker never imports torch, the trainer or the exporter: it serves bundles only.
"""
