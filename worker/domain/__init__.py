"""Pure domain logic of the worker: plain functions and data, tested without Kafka or a database."""
