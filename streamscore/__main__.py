"""``python -m streamscore``: the same CLI as the ``streamscore`` command (used to start worker processes)."""

from streamscore.cli import app

app(prog_name="streamscore")
