"""linkrec: offline link recommendations for Wikipedia."""

__version__ = "0.1.0"
