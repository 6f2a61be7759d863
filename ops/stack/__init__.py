"""The local stack: a single-node Apache Kafka (KRaft) and a PostgreSQL cluster, started without Docker.

``up`` records the PID of every process it starts in ``<stack_dir>/state.json``; ``down`` stops only those.
"""
