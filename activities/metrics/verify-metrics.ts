import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType, type VerifyResult } from '../../workflows/contracts';
import type { ActivityDeps } from '../deps';
import { influxUnreachable, isInfluxUnavailable, summarizeHostPoints } from './influx-query';

export interface VerifyMetricsInput {
  hostId: string;
  /** Only points newer than this count (the agent's start, as the host saw it). */
  sinceMs: number;
  deadlineMs: number;
  pollMs?: number;
  /** Only points that also carry these tags count (a changed host's new labels). */
  tags?: Record<string, string>;
}

/**
 * Done means data seen: polls InfluxDB until a point tagged with this host id and newer than the agent's start
 * arrives. At the deadline it names why not: InfluxUnreachable, StalePoints (only older points), NoPoints.
 */
export function verifyMetrics(deps: ActivityDeps) {
  return async function verifyMetrics(input: VerifyMetricsInput): Promise<VerifyResult> {
    const deadline = Date.now() + input.deadlineMs;
    const pollMs = input.pollMs ?? 1000;
    let lastError: unknown;
    // A slow query must not look like a dead worker (heartbeat timeout 10 s): beat while it runs too.
    const beat = setInterval(heartbeat, 2_000);
    try {
      for (;;) {
        heartbeat();
        try {
          const fresh = await summarizeHostPoints(deps.influx, input.hostId, input.sinceMs, input.tags);
          lastError = undefined;
          if (fresh.count > 0 && fresh.lastAtMs !== null) return { pointsSeen: fresh.count, lastPointAtMs: fresh.lastAtMs };
        } catch (err) {
          if (!isInfluxUnavailable(err)) throw err;
          lastError = err;
        }
        if (Date.now() >= deadline) break;
        await sleep(pollMs);
      }
      if (lastError) {
        throw influxUnreachable(deps.influx.url, lastError, { nonRetryable: true });
      }
      const older = await summarizeHostPoints(deps.influx, input.hostId, input.sinceMs - 7 * 24 * 3600_000).catch(() => null);
      if (older && older.count > 0) {
        throw ApplicationFailure.create({
          type: FailureType.StalePoints,
          message: `only points older than the agent's start (newest ${new Date(older.lastAtMs!).toISOString()}) for host_id=${input.hostId}`,
          nonRetryable: true,
        });
      }
      throw ApplicationFailure.create({
        type: FailureType.NoPoints,
        message: `no points tagged host_id=${input.hostId}${tagText(input.tags)} arrived within ${Math.round(input.deadlineMs / 1000)} s`,
        nonRetryable: true,
      });
    } finally {
      clearInterval(beat);
    }
  };
}

function tagText(tags: Record<string, string> | undefined): string {
  return tags ? Object.entries(tags).map(([k, v]) => ` ${k}=${JSON.stringify(v)}`).join('') : '';
}

function heartbeat(): void {
  try {
    Context.current().heartbeat();
  } catch {
    // not inside an activity (direct calls in tests)
  }
}

function sleep(ms: number): Promise<void> {
  let signal: AbortSignal | undefined;
  try {
    signal = Context.current().cancellationSignal;
  } catch {
    signal = undefined;
  }
  return new Promise((resolve, reject) => {
    // One listener per poll, removed when the poll ends: a 2-minute verification must not pile them up.
    const onAbort = () => (clearTimeout(t), reject(signal!.reason));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
