// Workflows of bench/sweep.ts (one bundle): the stand-in host entity (it upserts HostFreshness on each report, like
// the real one), and the baseline's timer per host. Deterministic workflow code only.
import { proxyActivities, sleep } from '@temporalio/workflow';

export { hostLifecycle } from '../../test/activities/fake-host-workflows';

export interface TimerPerHostActivities {
  /** The newest point of one host: what a per-host watcher asks InfluxDB every interval. */
  lastPointOfHost(hostId: string): Promise<number | null>;
}

const { lastPointOfHost } = proxyActivities<TimerPerHostActivities>({ startToCloseTimeout: '30 seconds' });

/** The design the sweep replaces: each host entity asks InfluxDB for its own points, then sleeps one interval. */
export async function timerPerHost(hostId: string, everyMs: number, rounds: number): Promise<number> {
  let seen = 0;
  for (let i = 0; i < rounds; i++) {
    if ((await lastPointOfHost(hostId)) !== null) seen++;
    await sleep(everyMs);
  }
  return seen;
}
