"""``python -m ops``: the same CLI as the ``streamscore`` command (used to start worker processes)."""

from ops.cli import app

app(prog_name="streamscore")
