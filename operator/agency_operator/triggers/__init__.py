"""What starts AgentRuns besides people: cron slots of AgentSchedules and CloudEvents sent to the operator.

The pieces are pure functions and small classes the operator's handlers call:

- `scheduler.plan_cron_step(schedule, runs, now)`: one cron step as data (run to create, runs to cancel
  and prune, status patch, events, requeue delay), built on
- `cron`: which slot is due (`due_slot`), the next one (`next_slot_after`), run names per slot and the
  concurrency decision;
- `runs`: the AgentRun manifests for a slot or a signal (`build_run_for_slot`, `build_run_for_signal`);
- `history`: active runs and which finished runs the history limits delete;
- `template`: the input template;
- `signals`: the CloudEvents HTTP endpoint (`signals.kube.build_kube_app`, `signals.app.serve`), its
  parsing, matching, significance tests and Kubernetes access.

Wiring into kopf, in outline::

    @kopf.daemon("agency.dev", "v1alpha1", "agentschedules", when=has_cron)
    async def cron(body, stopped, **_):
        while not stopped:
            schedule = AgentSchedule.from_k8s(latest body)
            runs = list AgentRuns with label agency.dev/schedule=<name>
            plan = plan_cron_step(schedule, runs, datetime.now(UTC))
            delete plan.cancel; create plan.create (409 = fine); delete plan.prune
            merge-patch {"status": plan.status}; post plan.events
            await stopped.wait(plan.requeue_after or MAX_REQUEUE_SECONDS)

    @kopf.on.startup()
    async def start_signals(memo, **_):
        client = signals.kube.async_client()
        memo.signal_runner = await signals.app.serve(
            signals.kube.build_kube_app(client), host="0.0.0.0", port=8443, ssl_context=...)

    @kopf.on.cleanup()
    async def stop_signals(memo, **_):
        await memo.signal_runner.cleanup()
"""
