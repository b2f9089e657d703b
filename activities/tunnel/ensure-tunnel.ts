import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import type { Logger } from '../../lib/logging';
import { workflowIds, type TunnelSpec, type TunnelStats, type TunnelStatus } from '../../workflows/contracts';
import { TunnelIdKey } from '../../workflows/search-attributes';
import type { tunnelKeeper } from '../../workflows/tunnel-keeper';
import { detachTunnelHostUpdate, restartTunnelUpdate, updateTunnelSpecUpdate } from '../../workflows/messages';
import { tunnelFailed } from './errors';
import { tunnelStatus } from './describe';

export interface EnsureTunnelDeps {
  temporal?: { client: Client; tunnelTaskQueue: string };
  log: Logger;
}

export interface EnsureTunnelOptions {
  /** Give up (non-retryable TunnelFailed) when the keeper has not reported connected by then. */
  connectDeadlineMs: number;
  /** How often to look; tests shorten it. */
  pollMs?: number;
  /** The host this tunnel carries metrics for: it joins the keeper's hosts (the keeper stops with its last host). */
  hostId?: string;
  /** Restart the forward even when the spec is unchanged (a repair of a tunnel that is down). */
  restart?: boolean;
}

const DEFAULT_POLL_MS = 500;

/** The keeper's run ended between our start and our update (or there is none). */
function keeperGone(err: unknown): boolean {
  return err instanceof WorkflowNotFoundError || /already completed/i.test(String((err as Error)?.message));
}

/** The keeper's validator refused: it is stopping (a stop or its last host leaving). */
function keeperStopping(err: unknown): boolean {
  return err instanceof WorkflowUpdateFailedError && /is stopping/.test(String(err.cause?.message));
}

/** How often a keeper that is just stopping is waited for before a fresh one is started. */
const MAX_START_TRIES = 5;

/**
 * Starts the keeper for the spec, or hands a running keeper the spec (it follows it: a re-onboarded host brings a
 * new forward key and pin, and a keeper holding the old ones would fail at its next reconnect). A keeper that is
 * stopping at this moment is waited for and a fresh one started.
 */
async function startOrUpdateKeeper(client: Client, taskQueue: string, spec: TunnelSpec, hostId: string | undefined, log: Logger) {
  for (let attempt = 1; ; attempt++) {
    const handle = await client.workflow.start<typeof tunnelKeeper>('tunnelKeeper', {
      args: [spec, { leases: 0, ...(hostId ? { hosts: [hostId] } : {}) }],
      taskQueue,
      workflowId: workflowIds.tunnel(spec.tunnelId),
      workflowIdConflictPolicy: 'USE_EXISTING',
      staticSummary: `Tunnel ${spec.tunnelId}: ${spec.bind.address}:${spec.bind.port} on ${spec.ssh.address} → ${spec.target.host}:${spec.target.port}`,
      typedSearchAttributes: [{ key: TunnelIdKey, value: spec.tunnelId }],
    });
    try {
      const res = await handle.executeUpdate(updateTunnelSpecUpdate, { args: [{ spec, ...(hostId ? { hostId } : {}) }] });
      log.info('tunnel keeper ensured', { workflowId: handle.workflowId, runId: handle.firstExecutionRunId, specChanged: res.changed, hosts: res.hosts });
      return { keeper: handle, changed: res.changed };
    } catch (err) {
      if (attempt >= MAX_START_TRIES || !(keeperStopping(err) || keeperGone(err))) throw err;
      log.warn('tunnel keeper was stopping; starting a fresh one', { attempt, error: (err as Error).message });
      await handle.result().catch(() => undefined);
    }
  }
}

/** The host no longer uses the tunnel (its onboarding failed or it left); a keeper with no host left stops. */
export function releaseTunnel(deps: EnsureTunnelDeps) {
  return async function releaseTunnel(input: { tunnelId: string; hostId: string }): Promise<{ remaining: number; stopping: boolean }> {
    if (!deps.temporal) throw new Error('releaseTunnel needs deps.temporal (a client and the tunnel task queue)');
    const handle = deps.temporal.client.workflow.getHandle(workflowIds.tunnel(input.tunnelId));
    try {
      const res = await handle.executeUpdate(detachTunnelHostUpdate, { args: [{ hostId: input.hostId }] });
      deps.log.info('host detached from tunnel', { ...input, ...res });
      return res;
    } catch (err) {
      // A keeper that is gone (or never started, or already stopping) holds nothing more for this host.
      if (keeperGone(err) || keeperStopping(err)) return { remaining: 0, stopping: true };
      throw err;
    }
  };
}

/**
 * Starts the tunnel keeper for `spec.tunnelId` unless one is already running (USE_EXISTING: many onboardings
 * may share a proxy host's tunnel), then waits until its activity heartbeats "connected".
 */
export function ensureTunnel(deps: EnsureTunnelDeps) {
  return async function ensureTunnel(spec: TunnelSpec, opts: EnsureTunnelOptions): Promise<TunnelStats> {
    if (!deps.temporal) throw new Error('ensureTunnel needs deps.temporal (a client and the tunnel task queue)');
    const { client, tunnelTaskQueue } = deps.temporal;
    const ctx = Context.current();
    const log = deps.log.child({ tunnelId: spec.tunnelId });
    const handle = await startOrUpdateKeeper(client, tunnelTaskQueue, spec, opts.hostId, log);
    ctx.heartbeat();
    if (opts.restart && !handle.changed) {
      await handle.keeper.executeUpdate(restartTunnelUpdate).catch((err: unknown) => {
        if (!(keeperGone(err) || keeperStopping(err))) throw err;
      });
      log.info('tunnel restarted', { hostId: opts.hostId });
    }

    const deadline = Date.now() + opts.connectDeadlineMs;
    let last: TunnelStatus | undefined;
    for (;;) {
      try {
        last = await tunnelStatus(client, spec.tunnelId);
      } catch (err) {
        log.warn('tunnel status unavailable', { error: (err as Error).message });
      }
      ctx.heartbeat(last);
      if (last?.state === 'connected' && last.stats) return last.stats;
      if (last?.state === 'refused' && last.refusal) {
        // The keeper's server refused the forward (changed host key, refused login): the same named failure here,
        // with the dialer's details (hop, address, port, offered key), so the host can ask for an approval.
        const r = last.refusal;
        throw ApplicationFailure.create({ type: r.type, message: `tunnel ${spec.tunnelId}: ${r.message}`, nonRetryable: true, ...(r.details ? { details: [r.details] } : {}) });
      }
      if (last?.state === 'stopped') {
        throw tunnelFailed(spec.tunnelId, `the tunnel keeper is not running${last.lastFailure ? `: ${last.lastFailure}` : ''}`, {
          nonRetryable: true,
        });
      }
      const left = deadline - Date.now();
      if (left <= 0) break;
      await ctx.sleep(Math.min(opts.pollMs ?? DEFAULT_POLL_MS, left)); // rejects on cancellation
    }
    throw tunnelFailed(
      spec.tunnelId,
      `not connected within ${opts.connectDeadlineMs} ms (state ${last?.state ?? 'unknown'}` +
        `${last?.attempt ? `, attempt ${last.attempt}` : ''})${last?.lastFailure ? `: ${last.lastFailure}` : ''}`,
      { nonRetryable: true },
    );
  };
}
