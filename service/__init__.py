"""nbrelay: a self-hosted event service for Losant Notebooks."""

__version__ = "0.1.0"
