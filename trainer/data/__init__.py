"""Data loaders: one module per public dataset, plus the documented generic formats users bring."""
