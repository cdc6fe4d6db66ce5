"""Alerts on failed notebook executions, after Alertmanager: identity, grouping, repeats and
resolution (state), and what the messages say (messages)."""
