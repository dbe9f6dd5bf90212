"""The link model: its tables, features, training, backtests and artifacts."""


class ModelError(Exception):
    """A model stage cannot run (nothing ingested, no training data, unknown model)."""
