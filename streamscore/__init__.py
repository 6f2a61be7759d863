"""streamscore: shared contracts (settings, errors, bundle format, scorer) and the CLI.

Every stage (``trainer``, ``export``, ``worker``) imports from here; nothing here imports a stage.
"""

__version__ = "0.1.0"
