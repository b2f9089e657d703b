import { proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import type { SweepFreshnessInput, SweepFreshnessResult } from '../../activities/metrics/freshness';

const { sweepFreshness } = proxyActivities<Pick<ReturnType<typeof createActivities>, 'sweepFreshness'>>({
  // Listing and signalling 10,000 hosts takes seconds; the heartbeat shows a stuck one long before this.
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '1 minute',
  // InfluxDB or Temporal briefly away: retry within the sweep. Bounded, because the Schedule starts the next sweep
  // anyway (and skips it while this one still runs), so a long outage is one failed sweep, not a pile of them.
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '15 seconds', maximumAttempts: 5 },
});

/**
 * One fleet-wide freshness sweep (the `host-freshness-sweep` Schedule starts one per interval): one InfluxDB query,
 * one visibility listing, a signal to each host whose freshness changed. No timer per host anywhere.
 */
export async function freshnessSweep(input: SweepFreshnessInput): Promise<SweepFreshnessResult> {
  return sweepFreshness(input);
}
