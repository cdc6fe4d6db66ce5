"""Pipelines and rules: the pipeline file (model, validation, templates), pipeline runs and the
follow-up actions they and the rules trigger, each performed exactly once."""
