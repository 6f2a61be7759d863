"""PostgreSQL contracts: table definitions (agreeing with ``sql/``), connection URLs and migrations."""
