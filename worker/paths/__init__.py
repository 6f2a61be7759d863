"""One module per input topic's batch logic (news, items, clicks) around the shared steps in ``core``."""
