import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter, WorkflowNotFoundError, type Payload } from '@temporalio/common';
import { FailureType } from '../../workflows/contracts';
import { hostFreshnessSignal, type FreshnessReport } from '../../workflows/host/messages';
import type { ActivityDeps } from '../deps';
import { fluxString, influxUnreachable, isInfluxUnavailable, queryApi } from './influx-query';

/**
 * Watching without a timer per host (DESIGN §4a): one sweep asks InfluxDB once for the newest point of every
 * `host_id`, lists the running host entities through visibility (which holds the `HostFreshness` each of them
 * last heard), and signals only the hosts whose freshness changed. A sweep costs one query, one paged listing and
 * O(changed hosts) history events, however many hosts are watched.
 */

/**
 * The one series the sweep reads: the role's Telegraf writes `system` (inputs.system) with an `uptime` field at
 * every interval on every host, init system or not. One series per host keeps the query cheap at 10,000 hosts;
 * a host that writes anything at all but not this would look stale, which for our own agent config means broken.
 */
export const FRESHNESS_SERIES = { measurement: 'system', field: 'uptime' } as const;

/** The host entity's workflow type and the visibility attributes the sweep reads (workflows/search-attributes.ts). */
export const HOST_WORKFLOW_TYPE = 'hostLifecycle';
const HOST_ID_ATTRIBUTE = 'HostId';
const HOST_FRESHNESS_ATTRIBUTE = 'HostFreshness';

export interface LastPointTimesOptions {
  /** How far back to look: a host whose newest point is older than this is absent from the result. */
  windowMs: number;
  /** The sweep's "now", ms since epoch (default: the clock). Points up to `windowMs` ahead of it count too. */
  nowMs?: number;
  measurement?: string;
  field?: string;
  /** HTTP timeout of the one query (default 30 s). */
  timeoutMs?: number;
}

/**
 * The newest point time (ms since epoch) per `host_id` within the window, from ONE Flux query. Works on InfluxDB
 * 2.x and on 1.8 with flux on. Filters on one measurement and field first (2.x pushes range, filter and `last()`
 * down to storage), takes the last point of each series, then the newest per host id (a host can have several
 * series, e.g. after its hostname changed), and returns only `host_id` and `_time`: one row per host.
 * The window also reaches `windowMs` ahead of now, so a host whose clock runs ahead of ours is not missed.
 */
export async function lastPointTimes(influx: ActivityDeps['influx'], opts: LastPointTimesOptions): Promise<Map<string, number>> {
  const now = opts.nowMs ?? Date.now();
  const flux =
    `from(bucket: ${fluxString(influx.bucket)})` +
    ` |> range(start: time(v: ${fluxString(new Date(now - opts.windowMs).toISOString())}),` +
    ` stop: time(v: ${fluxString(new Date(now + opts.windowMs).toISOString())}))` +
    ` |> filter(fn: (r) => r._measurement == ${fluxString(opts.measurement ?? FRESHNESS_SERIES.measurement)}` +
    ` and r._field == ${fluxString(opts.field ?? FRESHNESS_SERIES.field)} and r.host_id != ${fluxString('')})` +
    ` |> last()` +
    ` |> keep(columns: [${fluxString('host_id')}, ${fluxString('_time')}])` +
    ` |> group(columns: [${fluxString('host_id')}])` +
    ` |> max(column: ${fluxString('_time')})`;
  const out = new Map<string, number>();
  let col: { meta: unknown; host: number; time: number } | undefined;
  await queryApi(influx, opts.timeoutMs ?? 30_000).collectRows(flux, (values, meta) => {
    if (col?.meta !== meta) col = { meta, host: meta.column('host_id').index, time: meta.column('_time').index };
    const hostId = values[col.host];
    const at = Date.parse(values[col.time]);
    if (hostId && Number.isFinite(at) && at > (out.get(hostId) ?? -Infinity)) out.set(hostId, at);
    return undefined;
  });
  return out;
}

export interface SweepFreshnessInput {
  /** A host whose newest point is older than this at the sweep is stale. */
  staleAfterMs: number;
  /** How far back the query looks; default 2 × staleAfterMs, at least staleAfterMs. Older points count as none. */
  windowMs?: number;
  /**
   * Only the host entities on this task queue (one deployment's hosts, written to this deployment's InfluxDB);
   * every running `hostLifecycle` workflow in the namespace when absent.
   */
  hostTaskQueue?: string;
  /** Signals in flight at once (default 32). */
  signalConcurrency?: number;
}

export interface SweepFreshnessResult {
  /** Running host entities listed through visibility. */
  hostsWatched: number;
  /** Host ids with points within the window (watched or not): the rows the query returned. */
  pointsHosts: number;
  /** Watched hosts that are stale at this sweep. */
  staleHosts: number;
  /** Hosts whose freshness differed from what they last heard: one signal (one history event) each. */
  signalled: number;
  /** Hosts that closed between the listing and their signal: skipped, not an error. */
  skipped: number;
  queryMs: number;
  listMs: number;
  signalMs: number;
}

interface WatchedHost {
  workflowId: string;
  hostId: string;
  /** What the host last heard (its `HostFreshness` search attribute), absent before its first report. */
  heard?: 'fresh' | 'stale';
}

/**
 * The fleet-wide freshness sweep, run by the `host-freshness-sweep` Schedule. InfluxDB down is `InfluxUnreachable`
 * and retryable, and then no host is told anything: unknown is not stale. Rerunning it is safe: a host already
 * told (visible in `HostFreshness`) is not told again; a duplicate report while visibility catches up carries the
 * same freshness, and the host entity treats it as no change.
 */
export function sweepFreshness(deps: ActivityDeps) {
  return async function sweepFreshness(input: SweepFreshnessInput): Promise<SweepFreshnessResult> {
    const client = deps.temporal?.client;
    if (!client) throw invalid('sweepFreshness needs a Temporal client (deps.temporal.client)');
    const staleAfterMs = input.staleAfterMs;
    if (!Number.isInteger(staleAfterMs) || staleAfterMs < 1) throw invalid(`staleAfterMs must be a positive integer, got ${staleAfterMs}`);
    const windowMs = input.windowMs ?? 2 * staleAfterMs;
    if (!Number.isInteger(windowMs) || windowMs < staleAfterMs) throw invalid(`windowMs must be an integer of at least staleAfterMs (${staleAfterMs}), got ${windowMs}`);
    if (input.hostTaskQueue !== undefined && !TASK_QUEUE_PATTERN.test(input.hostTaskQueue)) throw invalid('hostTaskQueue has characters a task queue name cannot have');
    const concurrency = Math.max(1, Math.min(256, input.signalConcurrency ?? 32));

    const sweptAtMs = Date.now();
    heartbeat({ stage: 'query' });
    let t = Date.now();
    let points: Map<string, number>;
    try {
      points = await lastPointTimes(deps.influx, { windowMs, nowMs: sweptAtMs });
    } catch (err) {
      if (isInfluxUnavailable(err)) throw influxUnreachable(deps.influx.url, err, { nonRetryable: false });
      throw err;
    }
    const queryMs = Date.now() - t;

    heartbeat({ stage: 'list' });
    t = Date.now();
    const hosts = await listWatchedHosts(client, input.hostTaskQueue);
    const listMs = Date.now() - t;

    const changes: { host: WatchedHost; report: FreshnessReport }[] = [];
    let staleHosts = 0;
    for (const host of hosts) {
      const lastPointAtMs = points.get(host.hostId) ?? null;
      const fresh = lastPointAtMs !== null && sweptAtMs - lastPointAtMs <= staleAfterMs;
      if (!fresh) staleHosts++;
      if (host.heard !== (fresh ? 'fresh' : 'stale')) changes.push({ host, report: { fresh, lastPointAtMs, sweptAtMs } });
    }

    t = Date.now();
    let signalled = 0;
    let skipped = 0;
    let next = 0;
    const signalOne = async () => {
      while (next < changes.length) {
        throwIfCancelled();
        const { host, report } = changes[next++];
        try {
          // No run id: the current run gets it, also when the entity continued-as-new since the listing.
          await client.workflow.getHandle(host.workflowId).signal(hostFreshnessSignal, report);
          signalled++;
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
          skipped++; // closed (offboarded) since the listing
        }
        heartbeat({ stage: 'signal', done: signalled + skipped, of: changes.length });
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, changes.length) }, signalOne));
    const signalMs = Date.now() - t;

    const result = { hostsWatched: hosts.length, pointsHosts: points.size, staleHosts, signalled, skipped, queryMs, listMs, signalMs };
    deps.log.info('freshness sweep', { ...result });
    return result;
  };
}

/** Task queue names the visibility query may quote (no quote characters, nothing a query could be built from). */
const TASK_QUEUE_PATTERN = /^[A-Za-z0-9._:/@-]{1,200}$/;

/** Running host entities with their host id and what they last heard, every page of visibility. */
async function listWatchedHosts(client: Client, hostTaskQueue: string | undefined): Promise<WatchedHost[]> {
  const query =
    `WorkflowType = '${HOST_WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'` + (hostTaskQueue ? ` AND TaskQueue = '${hostTaskQueue}'` : '');
  // The raw listing, not client.workflow.list(): that one decodes (decrypts) every entity's memo, of which the
  // sweep needs nothing. Search attributes are plain JSON payloads, never encoded by the codec.
  const hosts: WatchedHost[] = [];
  let nextPageToken: Uint8Array | undefined;
  let page = 0;
  do {
    const res = await client.workflowService.listWorkflowExecutions({ namespace: client.options.namespace, query, pageSize: 1000, nextPageToken });
    for (const e of res.executions ?? []) {
      const workflowId = e.execution?.workflowId;
      if (!workflowId) continue;
      const fields = e.searchAttributes?.indexedFields ?? {};
      const hostId = keyword(fields[HOST_ID_ATTRIBUTE]) ?? (workflowId.startsWith('host/') ? workflowId.slice('host/'.length) : undefined);
      if (!hostId) continue;
      const heard = keyword(fields[HOST_FRESHNESS_ATTRIBUTE]);
      hosts.push({ workflowId, hostId, heard: heard === 'fresh' || heard === 'stale' ? heard : undefined });
    }
    heartbeat({ stage: 'list', page: ++page, hosts: hosts.length });
    nextPageToken = res.nextPageToken?.length ? res.nextPageToken : undefined;
  } while (nextPageToken);
  return hosts;
}

function keyword(p: Payload | null | undefined): string | undefined {
  if (!p) return undefined;
  const v = defaultPayloadConverter.fromPayload<unknown>(p);
  const s = Array.isArray(v) ? v[0] : v;
  return typeof s === 'string' && s !== '' ? s : undefined;
}

function invalid(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.InvalidInput, message, nonRetryable: true });
}

function heartbeat(details: Record<string, unknown>): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    // not inside an activity (direct calls in tests and benchmarks)
  }
}

function throwIfCancelled(): void {
  let signal: AbortSignal | undefined;
  try {
    signal = Context.current().cancellationSignal;
  } catch {
    return;
  }
  if (signal.aborted) throw signal.reason;
}
