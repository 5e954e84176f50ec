"""What starts AgentRuns besides people: cron slots of AgentSchedules and CloudEvents sent to the operator.

The pieces are pure functions and small classes the operator's handlers call:

- `cron`: which slot is due now (`due_slot`), when the next one is (`next_slot_after`), the run name for a
  slot and the concurrency decision;
- `runs`: the AgentRun manifests for a slot or a signal (`build_run_for_slot`, `build_run_for_signal`);
- `history`: active runs and which finished runs the history limits delete;
- `template`: the input template;
- `signals`: the CloudEvents HTTP endpoint, its matching, significance tests and Kubernetes access.
"""
