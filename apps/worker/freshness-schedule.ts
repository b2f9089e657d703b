import {
  ScheduleAlreadyRunning,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
  type ScheduleOptionsStartWorkflowAction,
} from '@temporalio/client';
import type { SweepFreshnessInput } from '../../activities/metrics/freshness';
import type { freshnessSweep } from '../../workflows/host/freshness-sweep';

export const FRESHNESS_SCHEDULE_ID = 'host-freshness-sweep';

export interface FreshnessScheduleOptions {
  /** Where the sweep workflow and its activity run, and whose host entities it watches (the onboarding queue). */
  taskQueue: string;
  everyMs: number;
  staleAfterMs: number;
  /** Tests only: another id than `host-freshness-sweep`. */
  scheduleId?: string;
}

export type FreshnessScheduleOutcome = 'created' | 'updated' | 'unchanged';

/**
 * Creates the Schedule that runs `freshnessSweep` every `everyMs`, or updates it when it exists with other
 * settings. Safe to call from every worker at start: a concurrent create loses to the first one and then finds its
 * settings already there. Workers configured differently each apply their own settings when they start (the last
 * one to start wins), so give all workers the same AO_FRESHNESS_SWEEP_MS and AO_STALE_AFTER_MS.
 *
 * Overlap SKIP: a sweep still running when the next is due (a slow InfluxDB) makes that one skip, never pile up.
 * A short catch-up window: after the Temporal server was down, at most one missed sweep runs, not one per interval.
 * Pausing it by hand (`temporal schedule toggle --pause`) is respected: an update never unpauses.
 */
export async function ensureFreshnessSchedule(client: Client, opts: FreshnessScheduleOptions): Promise<FreshnessScheduleOutcome> {
  const scheduleId = opts.scheduleId ?? FRESHNESS_SCHEDULE_ID;
  // Schedules work in whole seconds.
  const everyMs = Math.max(1000, Math.round(opts.everyMs / 1000) * 1000);
  const args: [SweepFreshnessInput] = [{ staleAfterMs: opts.staleAfterMs, hostTaskQueue: opts.taskQueue }];
  const action: ScheduleOptionsStartWorkflowAction<typeof freshnessSweep> = {
    type: 'startWorkflow',
    workflowType: 'freshnessSweep',
    workflowId: scheduleId,
    taskQueue: opts.taskQueue,
    args,
    // A sweep is a minute's work at most; one that cannot finish is replaced by the next, not kept.
    workflowExecutionTimeout: Math.max(everyMs * 10, 15 * 60_000),
  };
  const spec = { intervals: [{ every: everyMs }] };
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: Math.max(10_000, everyMs) };
  try {
    await client.schedule.create({ scheduleId, spec, action, policies });
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  const handle = client.schedule.getHandle(scheduleId);
  if (matches(await handle.describe(), { everyMs, action, policies })) return 'unchanged';
  await handle.update((prev) => ({ ...prev, spec, action, policies }));
  return 'updated';
}

function matches(
  d: ScheduleDescription,
  want: { everyMs: number; action: ScheduleOptionsStartWorkflowAction<typeof freshnessSweep>; policies: { overlap: string; catchupWindow: number } },
): boolean {
  const s = d.spec;
  const onlyInterval =
    s.intervals?.length === 1 && s.intervals[0].every === want.everyMs && !s.intervals[0].offset &&
    !s.calendars?.length && !(s as { cronExpressions?: string[] }).cronExpressions?.length;
  const a = d.action;
  return (
    onlyInterval &&
    a.type === 'startWorkflow' &&
    a.workflowType === want.action.workflowType &&
    a.taskQueue === want.action.taskQueue &&
    a.workflowId === want.action.workflowId &&
    a.workflowExecutionTimeout === want.action.workflowExecutionTimeout &&
    JSON.stringify(a.args) === JSON.stringify(want.action.args) &&
    d.policies.overlap === want.policies.overlap &&
    d.policies.catchupWindow === want.policies.catchupWindow
  );
}
