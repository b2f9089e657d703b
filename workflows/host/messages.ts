import { defineSignal } from '@temporalio/workflow';

// ---- host entity (`host/<hostId>`): what the fleet-wide watchers tell a host ----

/** Freshness of a host's points as the fleet-wide sweep saw them; sent only when it changed. */
export interface FreshnessReport {
  fresh: boolean;
  /** Newest point tagged with this host's id, ms since epoch; null when none within the sweep's window. */
  lastPointAtMs: number | null;
  sweptAtMs: number;
}
export const hostFreshnessSignal = defineSignal<[FreshnessReport]>('freshness');
