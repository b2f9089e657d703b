import { InfluxDB, HttpError, type QueryApi } from '@influxdata/influxdb-client';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../workflows/contracts';
import type { ActivityDeps } from '../deps';

/** Quotes a value as a Flux string literal. */
export function fluxString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$\{/g, '\\${')}"`;
}

/** The query API of the controller's InfluxDB (2.x, or 1.8 with flux on). */
export function queryApi(influx: ActivityDeps['influx'], timeoutMs = 10_000): QueryApi {
  return new InfluxDB({
    url: influx.url,
    token: influx.token,
    timeout: timeoutMs,
    // An https InfluxDB signed by a private CA (INFLUX_CA_FILE): the same trust as the tunnels' TLS end.
    ...(influx.ca ? { transportOptions: { ca: influx.ca } } : {}),
  }).getQueryApi(influx.org);
}

/**
 * InfluxDB is down or refuses us. Verification names it at its deadline (non-retryable: its own poll loop was the
 * retry); the freshness sweep lets Temporal retry it (the next sweep would try again anyway).
 */
export function influxUnreachable(url: string, cause: unknown, opts: { nonRetryable: boolean }): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.InfluxUnreachable,
    message: `InfluxDB at ${url} did not answer: ${(cause as Error)?.message ?? String(cause)}`,
    nonRetryable: opts.nonRetryable,
  });
}

export interface HostPointSummary {
  count: number;
  lastAtMs: number | null;
}

/** Points tagged `host_id == hostId` since `sinceMs`: how many and the newest time. Works on InfluxDB 2.x and 1.8 (flux on). */
export async function summarizeHostPoints(
  influx: ActivityDeps['influx'],
  hostId: string,
  sinceMs: number,
  tags: Readonly<Record<string, string>> = {},
): Promise<HostPointSummary> {
  const api = queryApi(influx);
  // Every tag name and value is a quoted Flux string literal (r["name"] == "value"): nothing in them is code.
  const tagFilter = Object.entries(tags)
    .map(([k, v]) => ` and r[${fluxString(k)}] == ${fluxString(v)}`)
    .join('');
  const base =
    `from(bucket: ${fluxString(influx.bucket)})` +
    ` |> range(start: time(v: ${fluxString(new Date(sinceMs).toISOString())}))` +
    ` |> filter(fn: (r) => r.host_id == ${fluxString(hostId)}${tagFilter})` +
    ` |> keep(columns: ["_time"]) |> group()`;
  // Fields of mixed types cannot share one table: count rows through a constant column instead.
  const [countRows, lastRows] = await Promise.all([
    api.collectRows<{ n: number }>(`${base} |> map(fn: (r) => ({ _time: r._time, n: 1 })) |> sum(column: "n")`),
    api.collectRows<{ _time: string }>(`${base} |> sort(columns: ["_time"], desc: true) |> limit(n: 1)`),
  ]);
  const count = countRows.length ? Number(countRows[0].n) : 0;
  const lastAtMs = lastRows.length ? Date.parse(lastRows[0]._time) : null;
  return { count, lastAtMs };
}

/** True for errors that mean InfluxDB itself is down or refusing us (as opposed to "no data yet"). */
export function isInfluxUnavailable(err: unknown): boolean {
  if (err instanceof HttpError) return err.statusCode >= 500 || err.statusCode === 401 || err.statusCode === 403;
  const code = (err as { code?: string })?.code;
  return typeof code === 'string' || /ECONNREFUSED|ETIMEDOUT|socket hang up|Request timed out/i.test(String((err as Error)?.message));
}
