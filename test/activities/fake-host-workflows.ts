// A stand-in for the host entity (`host/<hostId>`, type hostLifecycle) with the real freshness contract: it upserts
// HostFreshness on every report, as the real entity does, and records what it got. Deterministic workflow code only.
import { condition, defineQuery, defineSignal, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { hostFreshnessSignal, type FreshnessReport } from '../../workflows/host/messages';
import { HostFreshnessKey } from '../../workflows/search-attributes';

// The real sweep workflow, so one worker with this bundle runs both sides of a scheduled sweep.
export { freshnessSweep } from '../../workflows/host/freshness-sweep';

export const freshnessReportsQuery = defineQuery<FreshnessReport[]>('freshnessReports');
export const stopStandInSignal = defineSignal('stopStandIn');

/** Registered under the host entity's type name; started with the HostId search attribute by the test. */
export async function hostLifecycle(): Promise<number> {
  const reports: FreshnessReport[] = [];
  let stopped = false;
  setHandler(hostFreshnessSignal, (report) => {
    reports.push(report);
    upsertSearchAttributes([{ key: HostFreshnessKey, value: report.fresh ? 'fresh' : 'stale' }]);
  });
  setHandler(freshnessReportsQuery, () => reports);
  setHandler(stopStandInSignal, () => void (stopped = true));
  await condition(() => stopped);
  return reports.length;
}
