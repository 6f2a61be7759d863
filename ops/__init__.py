"""The operator shell: the ``streamscore`` command, the demo, replay, file scoring, the local stack launcher,
the dashboard snapshot and the benchmarks.

The top layer: it imports every stage (``trainer``, ``export``, ``worker``) and the contracts in
``streamscore``; nothing imports it.
"""
