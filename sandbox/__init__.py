"""A local implementation of the Losant Notebooks API that really runs notebooks."""

__version__ = "0.1.0"
