import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { Logger } from '../../lib/logging';
import { workflowIds, type TunnelSpec, type TunnelStats, type TunnelStatus } from '../../workflows/contracts';
import { TunnelIdKey } from '../../workflows/search-attributes';
import type { tunnelKeeper } from '../../workflows/tunnel-keeper';
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
}

const DEFAULT_POLL_MS = 500;

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
    const handle = await client.workflow.start<typeof tunnelKeeper>('tunnelKeeper', {
      args: [spec],
      taskQueue: tunnelTaskQueue,
      workflowId: workflowIds.tunnel(spec.tunnelId),
      workflowIdConflictPolicy: 'USE_EXISTING',
      staticSummary: `Tunnel ${spec.tunnelId}: ${spec.bind.address}:${spec.bind.port} on ${spec.ssh.address} → ${spec.target.host}:${spec.target.port}`,
      typedSearchAttributes: [{ key: TunnelIdKey, value: spec.tunnelId }],
    });
    log.info('tunnel keeper ensured', { workflowId: handle.workflowId, runId: handle.firstExecutionRunId });

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
