import { InfluxDB, HttpError } from '@influxdata/influxdb-client';
import type { ActivityDeps } from '../deps';

/** Quotes a value as a Flux string literal. */
export function fluxString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$\{/g, '\\${')}"`;
}

export interface HostPointSummary {
  count: number;
  lastAtMs: number | null;
}

/** Points tagged `host_id == hostId` since `sinceMs`: how many and the newest time. Works on InfluxDB 2.x and 1.8 (flux on). */
export async function summarizeHostPoints(influx: ActivityDeps['influx'], hostId: string, sinceMs: number): Promise<HostPointSummary> {
  const api = new InfluxDB({
    url: influx.url,
    token: influx.token,
    timeout: 10_000,
    // An https InfluxDB signed by a private CA (INFLUX_CA_FILE): the same trust as the tunnels' TLS end.
    ...(influx.ca ? { transportOptions: { ca: influx.ca } } : {}),
  }).getQueryApi(influx.org);
  const base =
    `from(bucket: ${fluxString(influx.bucket)})` +
    ` |> range(start: time(v: ${fluxString(new Date(sinceMs).toISOString())}))` +
    ` |> filter(fn: (r) => r.host_id == ${fluxString(hostId)})` +
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
