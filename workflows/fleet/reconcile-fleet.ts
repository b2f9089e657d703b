import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import { FailureType } from '../contracts';
import type { FleetSourceRead } from './messages';
import type { FleetPlan } from './plan';
import type { FleetSource } from './source';

type Activities = ReturnType<typeof createActivities>;

const { readFleetSource } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  // A source that is down briefly is read again; the Schedule's next pass comes anyway.
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '20s', maximumAttempts: 4, nonRetryableErrorTypes: [FailureType.InvalidInput, FailureType.InventoryUnreadable] },
  summary: 'reconcile: read the inventory source',
});
const { applyInventory } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1s', maximumAttempts: 5 },
  summary: 'reconcile: hand the read to the fleet',
});

export interface ReconcileFleetInput {
  fleetId: string;
  source: FleetSource;
  defaultPort: number;
  /** Compute the plan only (GET /v1/fleets/:id/plan). */
  dryRun?: boolean;
  /** Only read the source (the API checks a new fleet's source with it before starting anything). */
  readOnly?: boolean;
}

export type ReconcileResult = { plan: FleetPlan } | { read: Pick<FleetSourceRead, 'digest' | 'readAtMs' | 'ignored'> & { hosts: number } };

function named(err: unknown): { type: string; message: string } {
  for (let e: unknown = err; e instanceof Error; e = (e as { cause?: unknown }).cause) {
    if (e instanceof ApplicationFailure && e.type) return { type: e.type, message: e.message };
  }
  return { type: FailureType.InventoryUnreadable, message: err instanceof Error ? err.message : String(err) };
}

/**
 * One reconcile pass of a fleet with a source (the Schedule `reconcile-<fleetId>` starts one every interval; the API
 * runs one as a dry run for GET …/plan): read the source, let the fleet plan and apply. A source that cannot be
 * read is reported to the fleet (its status shows it) and fails the pass with its named failure.
 */
export async function reconcileFleet(input: ReconcileFleetInput): Promise<ReconcileResult> {
  let read: FleetSourceRead;
  try {
    read = await readFleetSource({ source: input.source, defaultPort: input.defaultPort });
  } catch (err) {
    const error = named(err);
    if (!input.readOnly && !input.dryRun) await applyInventory({ fleetId: input.fleetId, error });
    throw ApplicationFailure.create({ type: error.type, message: error.message, nonRetryable: true });
  }
  if (input.readOnly) return { read: { digest: read.digest, readAtMs: read.readAtMs, ignored: read.ignored.slice(0, 50), hosts: read.hosts.length } };
  const plan = await applyInventory({ fleetId: input.fleetId, read, ...(input.dryRun ? { dryRun: true } : {}) });
  if ('error' in plan) throw ApplicationFailure.create({ type: FailureType.InvalidInput, message: plan.error, nonRetryable: true });
  return { plan };
}
