"""RQ jobs of nbrelay and the worker runtime that runs them."""
