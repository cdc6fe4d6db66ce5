"""What nbrelay does when executions end: pipelines, rules, actions and alerts.

- `pipeline_file/`: the pipeline file (model, validation, templates) and the version in force;
- `pipelines/`: pipeline runs (the state machine) and the coordinator that starts their steps;
- `rules`: the rules engine;
- `actions/`: the action ledger (exactly-once claims), the dispatcher and the performers;
- `alerts/`: alert states, notebook histories, messages and the notifier;
- `channels/`: one class per kind of notification channel.

Everything outside talks to the `Followups` facade (`facade`), built by `build_followups`
(`factory`). Their stores read Redis through a connection that decodes responses. Nothing is
imported here, so that reading the pipeline file does not load the metrics before a command
has set them up.
"""
