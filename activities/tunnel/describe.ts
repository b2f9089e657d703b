import type { Client, WorkflowExecutionDescription } from '@temporalio/client';
import {
  decodeFromPayloadsAtIndex,
  decodeOptionalFailureToOptionalError,
} from '@temporalio/common/lib/internal-non-workflow';
import type { LoadedDataConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { tunnelStatusQuery } from '../../workflows/messages';
import { workflowIds, type TunnelStats, type TunnelStatus } from '../../workflows/contracts';

/**
 * A tunnel's status comes from two places: the keeper workflow (its query: stopping, restarting, leases)
 * and its pending `holdReverseForward` activity as the server sees it (attempt, last failure, last heartbeat
 * with the stats). Activity retries are invisible to the workflow, so "connected" can only come from the
 * heartbeat. Used by ensureTunnel and by the API; the pure part is `tunnelStatusFrom`.
 */

export type PendingActivityState = 'scheduled' | 'started' | 'cancel-requested' | 'paused' | 'unknown';

export interface KeeperObservation {
  tunnelId: string;
  /** Workflow execution status name from describe (RUNNING, COMPLETED, FAILED, ...). */
  workflowStatus: string;
  /** Why the keeper workflow ended, when it failed (the innermost cause's message). */
  workflowFailure?: string;
  /** The keeper's own view; absent when the query could not be answered (no worker polling, closed workflow). */
  query?: TunnelStatus;
  /** The pending holdReverseForward, if one is scheduled or running. */
  activity?: {
    state: PendingActivityState;
    attempt: number;
    /** Last heartbeat. The server keeps it across retries: it may be the previous attempt's. */
    heartbeat?: TunnelStats;
    lastFailure?: string;
  };
}

/** Pure: the status the API and ensureTunnel report, from what describe and the query said. */
export function tunnelStatusFrom(o: KeeperObservation): TunnelStatus {
  const base: TunnelStatus = { tunnelId: o.tunnelId, state: 'connecting' };
  if (o.workflowStatus !== 'RUNNING') {
    const why = o.workflowFailure ?? o.query?.lastFailure;
    return { ...base, state: 'stopped', ...(why ? { lastFailure: why } : {}) };
  }
  const a = o.activity;
  const lastFailure = a?.lastFailure ?? o.query?.lastFailure;
  const out: TunnelStatus = {
    ...base,
    ...(a ? { attempt: a.attempt } : {}),
    ...(lastFailure ? { lastFailure } : {}),
  };
  if (o.query?.state === 'stopped') return { ...out, state: 'stopped' };
  // Parked after the server refused the forward: no activity runs until a new spec or a restart.
  if (o.query?.state === 'refused' && !a) return { ...out, state: 'refused', ...(o.query.refusal ? { refusal: o.query.refusal } : {}) };
  if (!a) {
    // Between two leases (or before the first one is scheduled).
    return { ...out, state: o.query?.state === 'reconnecting' ? 'reconnecting' : 'connecting' };
  }
  // A heartbeat counts only if this attempt sent it: reconnects = attempt - 1 by construction.
  const current = a.heartbeat && a.heartbeat.reconnects === a.attempt - 1 ? a.heartbeat : undefined;
  if (current) out.stats = current;
  else if (a.heartbeat) out.stats = { ...a.heartbeat, connected: false, openConnections: 0 };
  if (a.state === 'started' && current?.connected) return { ...out, state: 'connected' };
  if (a.attempt > 1 || a.lastFailure || o.query?.state === 'reconnecting') return { ...out, state: 'reconnecting' };
  return { ...out, state: 'connecting' };
}

const ACTIVITY_STATES: Record<number, PendingActivityState> = {
  [temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED]: 'scheduled',
  [temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED]: 'started',
  [temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED]: 'cancel-requested',
  [temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED]: 'paused',
  [temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_PAUSE_REQUESTED]: 'paused',
};

/** Decodes the keeper's pending activity from a describe result (payloads and failures are encrypted). */
export async function observeDescription(
  converter: LoadedDataConverter,
  tunnelId: string,
  description: WorkflowExecutionDescription,
  query?: TunnelStatus,
): Promise<KeeperObservation> {
  const pending = (description.raw.pendingActivities ?? []).find((p) => p.activityType?.name === 'holdReverseForward');
  const obs: KeeperObservation = { tunnelId, workflowStatus: description.status.name, ...(query ? { query } : {}) };
  if (!pending) return obs;
  let heartbeat: TunnelStats | undefined;
  if (pending.heartbeatDetails?.payloads?.length) {
    try {
      heartbeat = await decodeFromPayloadsAtIndex<TunnelStats>(converter, 0, pending.heartbeatDetails.payloads);
    } catch {
      heartbeat = undefined; // undecodable details (other key ring): report without stats rather than fail
    }
  }
  let lastFailure: string | undefined;
  if (pending.lastFailure) {
    try {
      lastFailure = (await decodeOptionalFailureToOptionalError(converter, pending.lastFailure))?.message;
    } catch {
      lastFailure = 'undecodable failure';
    }
  }
  obs.activity = {
    state: ACTIVITY_STATES[pending.state ?? 0] ?? 'unknown',
    attempt: pending.attempt ?? 1,
    ...(heartbeat ? { heartbeat } : {}),
    ...(lastFailure ? { lastFailure } : {}),
  };
  return obs;
}

/** How long the query may take: without a worker polling the tunnel queue it would otherwise hang. */
const QUERY_BUDGET_MS = 2_000;

/** Reads a keeper's status. Throws the client's WorkflowNotFoundError when there is no such tunnel. */
export async function tunnelStatus(client: Client, tunnelId: string): Promise<TunnelStatus> {
  const handle = client.workflow.getHandle(workflowIds.tunnel(tunnelId));
  const description = await handle.describe();
  let query: TunnelStatus | undefined;
  if (description.status.name === 'RUNNING') {
    try {
      query = await client.withDeadline(Date.now() + QUERY_BUDGET_MS, () => handle.query(tunnelStatusQuery));
    } catch {
      query = undefined; // describe alone still tells attempt, failure and stats
    }
  }
  const obs = await observeDescription(client.options.loadedDataConverter, tunnelId, description, query);
  if (FAILED_STATUSES.has(description.status.name)) {
    // A closed workflow answers result() at once; its innermost cause says why (e.g. AuthFailed from the dialer).
    const err = await handle.result().then(() => undefined, (e: unknown) => e);
    if (err instanceof Error) obs.workflowFailure = innermostMessage(err);
  }
  return tunnelStatusFrom(obs);
}

const FAILED_STATUSES = new Set(['FAILED', 'TERMINATED', 'TIMED_OUT']);

export function innermostMessage(err: Error): string {
  let e: Error = err;
  while (e.cause instanceof Error) e = e.cause;
  return e.message;
}
