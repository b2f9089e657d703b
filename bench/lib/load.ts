/**
 * An open-loop load generator: request i is due at t0 + i/rate whatever happened to the earlier ones, and
 * its latency counts from when it was due (so a stalled server is not hidden by a stalled client).
 * Bounded by both a count and a duration.
 */
export interface LoadResult {
  sent: number;
  /** From when each request was due (includes any lag of this generator). */
  latenciesMs: number[];
  /** From when each request was actually sent (the server's share). */
  serviceMs: number[];
  /** How late the generator sent, ms (CPU starvation of the client shows here). */
  maxSendLagMs: number;
  errors: number;
  statuses: Record<string, number>;
}

export async function openLoop(opts: {
  ratePerS: number;
  maxCount: number;
  maxDurationMs: number;
  /** Stop early once this returns true (checked before each send). */
  stop?: () => boolean;
  request: (i: number) => Promise<Response>;
}): Promise<LoadResult> {
  const interval = 1000 / opts.ratePerS;
  const t0 = performance.now();
  const pending: Promise<void>[] = [];
  const result: LoadResult = { sent: 0, latenciesMs: [], serviceMs: [], maxSendLagMs: 0, errors: 0, statuses: {} };
  for (let i = 0; i < opts.maxCount; i++) {
    const due = t0 + i * interval;
    if (due - t0 > opts.maxDurationMs || opts.stop?.()) break;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    result.sent++;
    const sentAt = performance.now();
    result.maxSendLagMs = Math.max(result.maxSendLagMs, sentAt - due);
    pending.push(
      opts.request(i).then(
        async (res) => {
          await res.arrayBuffer();
          const now = performance.now();
          result.latenciesMs.push(now - due);
          result.serviceMs.push(now - sentAt);
          result.statuses[res.status] = (result.statuses[res.status] ?? 0) + 1;
          if (res.status >= 400) result.errors++;
        },
        (e: Error & { cause?: { code?: string } }) => {
          result.errors++;
          const key = `neterr:${e.cause?.code ?? e.name}`;
          result.statuses[key] = (result.statuses[key] ?? 0) + 1;
        },
      ),
    );
  }
  await Promise.all(pending);
  return result;
}
