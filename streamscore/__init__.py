"""streamscore: the shared contracts every stage builds on.

Settings, the error root, logs, security options, event schemas, topic names, the bundle format, the
scorer and its call plan, and the PostgreSQL tables, connections and migrations. The lowest layer:
nothing here imports a stage (``trainer``, ``export``, ``worker``) or the operator shell (``ops``), nor
torch or Faust.
"""

__version__ = "0.1.0"
