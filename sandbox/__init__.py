"""A local implementation of the Losant Notebooks API that really runs notebooks."""
