/**
 * Freshness sweep (watching without a timer per host): ours, one Flux query for the newest point of every host_id
 * plus one visibility listing and a signal per host whose freshness changed, vs the baseline, a timer per host
 * (every host entity asks InfluxDB for its own newest point each interval and sleeps).
 *
 * For each host count it writes a window of Telegraf-like points (system, cpu, mem every 10 s) straight to
 * InfluxDB, one database per count, then measures:
 *   1. the one query: p50/max over RUNS, rows returned; the baseline's N per-host queries (wall time, p50 each);
 *   2. with N stand-in host entities (test/activities/fake-host-workflows.ts: they upsert HostFreshness on each
 *      report like the real one), up to STANDINS_MAX hosts: sweeps in a row, first (nobody has heard anything),
 *      steady (nothing changed), one host stopped writing, the same host back. Signals per sweep, and history
 *      events per sweep measured as the change of the summed historyLength of all stand-ins;
 *   3. a timer per host: history events per host per interval, measured on 10 timerPerHost workflows.
 * Counts above STANDINS_MAX get no stand-ins: their signals per sweep are counted from consecutive query results
 * (the hosts whose freshness flipped between two sweeps: what the sweep would signal), and said so in the table.
 *
 *   node -r @swc-node/register bench/sweep.ts
 *   HOST_COUNTS=10,1000,10000 STANDINS_MAX=10000 BASELINE_MAX=10000 RUNS=7 node -r @swc-node/register bench/sweep.ts
 * BASELINE_MAX (default 1000): per-host queries measured per count; above it their wall time is scaled up.
 * Only loopback: its own Temporal dev server and InfluxDB 1.8 (bench/lib/stack.ts). No fleet, no root needed.
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { FRESHNESS_SERIES, lastPointTimes, sweepFreshness, type SweepFreshnessResult } from '../activities/metrics/freshness';
import { fluxString, queryApi } from '../activities/metrics/influx-query';
import type { ActivityDeps } from '../activities/deps';
import type { Logger } from '../lib/logging';
import { dataConverterFor } from '../lib/temporal';
import { FAILURE_CONVERTER_PATH } from '../apps/worker/bundle';
import { workflowIds } from '../workflows/contracts';
import { HostIdKey } from '../workflows/search-attributes';
import { runBench, startStack, type BenchStack } from './lib/stack';
import { envInt, envList, fmtMs, median, percentile, printJsonResult, ratio, table, until } from './lib/stats';
import type { TimerPerHostActivities } from './lib/sweep-workflows';

const INTERVAL_MS = 10_000; // the role's Telegraf interval
const WINDOW_MS = 180_000; // the sweep's default window: 2 × AO_STALE_AFTER_MS (90 s)

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

interface CaseResult {
  hosts: number;
  linesWritten: number;
  writeMs: number;
  rows: number;
  queryMs: number[];
  baseline: { queries: number; measured: number; wallMs: number; eachP50: number };
  sweeps?: {
    measured: 'stand-ins' | 'query diff';
    startMs?: number;
    first: SweepFigures;
    steady: SweepFigures;
    stopped: SweepFigures;
    back: SweepFigures;
  };
}
interface SweepFigures {
  signalled: number;
  events?: number;
  queryMs?: number;
  listMs?: number;
  signalMs?: number;
}

runBench('sweep', async (cleanup) => {
  const counts = envList('HOST_COUNTS', [10, 1000, 10000]);
  const runs = envInt('RUNS', 7);
  const standinsMax = envInt('STANDINS_MAX', 1000);
  const staleMs = envInt('STALE_MS', 15_000);
  const baselineMax = envInt('BASELINE_MAX', 1000);
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const stack = await startStack(cleanup, 'sweep');
  const connection = await NativeConnection.connect({ address: stack.temporal.address });
  cleanup.add('worker connection', () => connection.close());
  const bundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('./lib/sweep-workflows'),
    failureConverterPath: FAILURE_CONVERTER_PATH,
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn: (m) => console.warn(m), error: (m) => console.error(m) },
  });
  console.log(`sweep bench: host counts ${counts.join(', ')}, ${runs} query runs each, stand-ins up to ${standinsMax}, stale after ${staleMs} ms, window ${WINDOW_MS} ms`);

  const timer = await timerPerHostEvents(cleanup, stack, connection, bundle);
  console.log(`  timer per host: ${timer.perHostPerInterval} history events per host per interval (measured on ${timer.hosts} hosts)`);

  const results: CaseResult[] = [];
  for (const n of counts) {
    const r = await runCase(cleanup, stack, connection, bundle, n, { runs, standins: n <= standinsMax, staleMs, baselineMax });
    results.push(r);
  }

  console.log('\nOne query for every host vs one query per host (InfluxDB 1.8, window 180 s of 10 s points)\n');
  console.log(
    table(
      ['hosts', 'rows', 'ours: 1 query p50', 'ours max', `by host: ${'N'} queries (wall)`, 'by host: p50 each', 'ratio (wall)'],
      results.map((r) => [
        r.hosts,
        r.rows,
        fmtMs(median(r.queryMs)),
        fmtMs(Math.max(...r.queryMs)),
        `${r.baseline.queries} in ${fmtMs(r.baseline.wallMs)}${r.baseline.measured < r.baseline.queries ? ` (${r.baseline.measured} measured, scaled)` : ''}`,
        fmtMs(r.baseline.eachP50),
        ratio(median(r.queryMs), r.baseline.wallMs),
      ]),
    ),
  );
  console.log('\nSignals and history events per sweep (ours) vs a timer per host (baseline, per interval)\n');
  const ev = (f: SweepFigures) => (f.events === undefined ? `${f.signalled} (diff)` : `${f.signalled} / ${f.events}`);
  console.log(
    table(
      ['hosts', 'measured with', 'first sweep', 'steady', 'one stopped', 'one back', 'list p50 (steady)', 'sweep p50 (steady)', 'timer per host: events/interval'],
      results.map((r) => [
        r.hosts,
        r.sweeps?.measured ?? '-',
        r.sweeps ? ev(r.sweeps.first) : '-',
        r.sweeps ? ev(r.sweeps.steady) : '-',
        r.sweeps ? ev(r.sweeps.stopped) : '-',
        r.sweeps ? ev(r.sweeps.back) : '-',
        r.sweeps?.steady.listMs !== undefined ? fmtMs(r.sweeps.steady.listMs) : '-',
        r.sweeps?.steady.queryMs !== undefined ? fmtMs(r.sweeps.steady.queryMs + (r.sweeps.steady.listMs ?? 0) + (r.sweeps.steady.signalMs ?? 0)) : '-',
        r.hosts * timer.perHostPerInterval,
      ]),
    ),
  );
  console.log('(cells: signals / history events; "(diff)": signals counted from consecutive query results, no workflows)');
  printJsonResult('sweep', { windowMs: WINDOW_MS, staleMs, timerPerHost: timer, cases: results });
});

async function runCase(
  cleanup: { add(what: string, fn: () => unknown): void },
  stack: BenchStack,
  connection: NativeConnection,
  bundle: WorkflowBundleWithSourceMap,
  n: number,
  opts: { runs: number; standins: boolean; staleMs: number; baselineMax: number },
): Promise<CaseResult> {
  const db = `sweep_${n}`;
  await influxQl(stack, `CREATE DATABASE ${db}`);
  const influx: ActivityDeps['influx'] = { url: stack.influx.url, token: stack.influx.token, org: stack.influx.org, bucket: `${db}/autogen` };
  const ids = Array.from({ length: n }, (_, i) => `s${n}-${String(i).padStart(5, '0')}`);
  console.log(`\n[${n} hosts]`);

  // A window of history, as Telegraf would have left it.
  let t0 = Date.now();
  const now = t0;
  const lines: string[] = [];
  for (const id of ids) {
    for (let t = now - WINDOW_MS; t <= now; t += INTERVAL_MS) lines.push(...telegrafLines(id, t));
  }
  await writeLines(influx, lines);
  const writeMs = Date.now() - t0;
  console.log(`  wrote ${lines.length} lines in ${fmtMs(writeMs)}`);

  // 1. the one query, and the baseline's query per host.
  const queryMs: number[] = [];
  const rowsPerRun: number[] = [];
  for (let i = 0; i < opts.runs; i++) {
    t0 = Date.now();
    rowsPerRun.push((await lastPointTimes(influx, { windowMs: WINDOW_MS })).size);
    queryMs.push(Date.now() - t0);
  }
  const rows = Math.min(...rowsPerRun);
  if (rows !== n || Math.max(...rowsPerRun) !== n) throw new Error(`the query returned ${rowsPerRun.join(', ')} rows, not ${n}`);
  console.log(`  ours: 1 query, ${rows} rows, p50 ${fmtMs(median(queryMs))} (runs: ${queryMs.map((x) => fmtMs(x)).join(', ')})`);
  const each: number[] = [];
  const sample = ids.slice(0, Math.max(1, Math.min(ids.length, opts.baselineMax)));
  t0 = Date.now();
  await pool(sample, 8, async (id) => {
    const s = Date.now();
    await lastPointOfHost(influx, id);
    each.push(Date.now() - s);
  });
  const sampleWallMs = Date.now() - t0;
  // Above BASELINE_MAX queries the wall time is the sample's, scaled to all hosts (said in the table).
  const baseline = { queries: ids.length, measured: sample.length, wallMs: (sampleWallMs * ids.length) / sample.length, eachP50: median(each) };
  console.log(
    `  by host: ${sample.length} queries in ${fmtMs(sampleWallMs)} (8 at a time), p50 ${fmtMs(baseline.eachP50)} each, p95 ${fmtMs(percentile(each, 95))}` +
      (sample.length < ids.length ? `; ${ids.length} scaled: ${fmtMs(baseline.wallMs)}` : ''),
  );

  const result: CaseResult = { hosts: n, linesWritten: lines.length, writeMs, rows, queryMs, baseline };
  result.sweeps = opts.standins ? await sweepsWithStandIns(cleanup, stack, connection, bundle, influx, ids, opts) : await sweepsByDiff(influx, ids, opts);
  return result;
}

/** Sweeps in a row against N stand-in host entities: signals and history events per sweep, measured. */
async function sweepsWithStandIns(
  cleanup: { add(what: string, fn: () => unknown): void },
  stack: BenchStack,
  connection: NativeConnection,
  bundle: WorkflowBundleWithSourceMap,
  influx: ActivityDeps['influx'],
  ids: string[],
  opts: { runs: number; staleMs: number },
): Promise<NonNullable<CaseResult['sweeps']>> {
  const client = stack.client;
  const taskQueue = `${stack.config.temporal.onboardingTaskQueue}-hosts-${ids.length}`;
  const worker = await Worker.create({ connection, taskQueue, workflowBundle: bundle, dataConverter: dataConverterFor(stack.keyring), maxCachedWorkflows: Math.min(2000, ids.length) });
  const running = worker.run();
  const stopWorker = async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await running.catch(() => undefined);
  };
  cleanup.add(`stand-in worker ${ids.length}`, stopWorker);
  try {
    const t0 = Date.now();
    await pool(ids, 32, (hostId) =>
      client.workflow.start('hostLifecycle', { taskQueue, workflowId: workflowIds.host(hostId), typedSearchAttributes: [{ key: HostIdKey, value: hostId }] }),
    );
    const inQueue = `TaskQueue = '${taskQueue}' AND ExecutionStatus = 'Running'`;
    await until('stand-ins visible', async () => (await client.workflow.count(inQueue)).count === ids.length, 600_000, 500);
    const startMs = Date.now() - t0;
    console.log(`  started ${ids.length} stand-in host entities in ${fmtMs(startMs)}`);

    const deps: ActivityDeps = { keyring: stack.keyring, influx, log: quiet, temporal: { client, tunnelTaskQueue: stack.config.temporal.tunnelTaskQueue } };
    const sweep = () => sweepFreshness(deps)({ staleAfterMs: opts.staleMs, windowMs: WINDOW_MS, hostTaskQueue: taskQueue });
    let seen = '';
    const settled = (fresh: number) =>
      until(
        `${fresh} hosts heard fresh`,
        async () => {
          const f = (await client.workflow.count(`${inQueue} AND HostFreshness = 'fresh'`)).count;
          const st = (await client.workflow.count(`${inQueue} AND HostFreshness = 'stale'`)).count;
          seen = `visibility: ${f} fresh, ${st} stale`;
          return f === fresh && st === ids.length - fresh;
        },
        600_000,
        250,
      ).catch((e: Error) => {
        throw new Error(`${e.message}; ${seen}`);
      });
    const workflowIdList = ids.map((id) => workflowIds.host(id));
    const events = () => historyTotal(client, workflowIdList);
    let lastTick = 0;
    const tick = async (skip?: string) => {
      lastTick = Date.now();
      await writeLines(influx, ids.filter((id) => id !== skip).map((id) => uptimeLine(id, lastTick)));
    };
    const figures = (r: SweepFreshnessResult, ev?: number): SweepFigures => ({ signalled: r.signalled, events: ev, queryMs: r.queryMs, listMs: r.listMs, signalMs: r.signalMs });
    const say = (what: string, f: SweepFigures) =>
      console.log(`  ${what}: ${f.signalled} signals, ${f.events} history events; query ${fmtMs(f.queryMs!)}, list ${fmtMs(f.listMs!)}, signal ${fmtMs(f.signalMs!)}`);

    // Each stand-in's first workflow task done (started, task scheduled, started, completed) before counting.
    await until('stand-ins idle', async () => (await events()) === 4 * ids.length, 600_000, 500);

    // First sweep: nobody has heard anything, everybody is told.
    let e0 = await events();
    await tick();
    const r1 = await sweep();
    if (r1.staleHosts !== 0) throw new Error(`first sweep found ${r1.staleHosts} stale hosts`);
    await settled(ids.length);
    const lengths = new Map<string, number>();
    let e1 = await historyTotal(client, workflowIdList, lengths);
    const first = figures(r1, e1 - e0);
    say('first sweep', first);
    if (first.events! > 5 * first.signalled) console.log(`    ${await extraEventTypes(client, lengths, 4)}`);

    // Steady: everybody keeps writing, nothing changes.
    const steadyRuns: SweepFreshnessResult[] = [];
    e0 = e1;
    for (let i = 0; i < opts.runs; i++) {
      await tick();
      steadyRuns.push(await sweep());
    }
    e1 = await events();
    const steady: SweepFigures = {
      signalled: Math.max(...steadyRuns.map((r) => r.signalled)),
      events: (e1 - e0) / opts.runs,
      queryMs: median(steadyRuns.map((r) => r.queryMs)),
      listMs: median(steadyRuns.map((r) => r.listMs)),
      signalMs: median(steadyRuns.map((r) => r.signalMs)),
    };
    say(`steady (p50 of ${opts.runs})`, steady);

    // One host stops writing: once its last point is older than staleMs, only it is told.
    const quietHost = ids[0];
    const lastOfQuiet = lastTick;
    await until('the quiet host is past stale', () => Date.now() > lastOfQuiet + opts.staleMs + 500, opts.staleMs + 30_000, 250);
    e0 = await events();
    await tick(quietHost);
    const r3 = await sweep();
    await settled(ids.length - 1);
    e1 = await events();
    const stopped = figures(r3, e1 - e0);
    say('one host stopped', stopped);

    // It writes again: only it is told, fresh.
    e0 = e1;
    await tick();
    const r4 = await sweep();
    await settled(ids.length);
    e1 = await events();
    const back = figures(r4, e1 - e0);
    say('the host back', back);
    return { measured: 'stand-ins', startMs, first, steady, stopped, back };
  } finally {
    await stopWorker();
  }
}

/**
 * Without stand-ins: what the sweep would signal, counted from consecutive query results (a host is signalled when
 * its freshness differs from the previous sweep's; at the first sweep every host). Same queries and timing as above.
 */
async function sweepsByDiff(influx: ActivityDeps['influx'], ids: string[], opts: { runs: number; staleMs: number }): Promise<NonNullable<CaseResult['sweeps']>> {
  let heard = new Map<string, boolean>();
  let lastTick = 0;
  const tick = async (skip?: string) => {
    lastTick = Date.now();
    await writeLines(influx, ids.filter((id) => id !== skip).map((id) => uptimeLine(id, lastTick)));
  };
  const sweep = async (): Promise<SweepFigures> => {
    const at = Date.now();
    const t0 = Date.now();
    const points = await lastPointTimes(influx, { windowMs: WINDOW_MS, nowMs: at });
    const queryMs = Date.now() - t0;
    const now = new Map(ids.map((id) => [id, points.has(id) && at - points.get(id)! <= opts.staleMs] as const));
    const signalled = ids.filter((id) => heard.get(id) !== now.get(id)).length;
    heard = now;
    return { signalled, queryMs };
  };
  await tick();
  const first = await sweep();
  const steadyRuns: SweepFigures[] = [];
  for (let i = 0; i < opts.runs; i++) {
    await tick();
    steadyRuns.push(await sweep());
  }
  const steady = { signalled: Math.max(...steadyRuns.map((s) => s.signalled)), queryMs: median(steadyRuns.map((s) => s.queryMs!)) };
  const lastOfQuiet = lastTick;
  await until('the quiet host is past stale', () => Date.now() > lastOfQuiet + opts.staleMs + 500, opts.staleMs + 30_000, 250);
  await tick(ids[0]);
  const stopped = await sweep();
  await tick();
  const back = await sweep();
  console.log(`  no stand-ins (counted from query results): signals first ${first.signalled}, steady ${steady.signalled}, one stopped ${stopped.signalled}, back ${back.signalled}`);
  return { measured: 'query diff', first, steady, stopped, back };
}

/** History events per host per interval of a timer per host, measured: (3 rounds − 1 round) / 2 on the same hosts. */
async function timerPerHostEvents(
  cleanup: { add(what: string, fn: () => unknown): void },
  stack: BenchStack,
  connection: NativeConnection,
  bundle: WorkflowBundleWithSourceMap,
): Promise<{ hosts: number; perHostPerInterval: number }> {
  const hosts = 10;
  const taskQueue = `${stack.config.temporal.onboardingTaskQueue}-timer`;
  const influx: ActivityDeps['influx'] = { url: stack.influx.url, token: stack.influx.token, org: stack.influx.org, bucket: stack.influx.bucket };
  const activities: TimerPerHostActivities = { lastPointOfHost: (hostId) => lastPointOfHost(influx, hostId) };
  const worker = await Worker.create({ connection, taskQueue, workflowBundle: bundle, activities, dataConverter: dataConverterFor(stack.keyring) });
  const running = worker.run();
  const stop = async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await running.catch(() => undefined);
  };
  cleanup.add('timer-per-host worker', stop);
  try {
    const lengths = async (rounds: number) => {
      const handles = await Promise.all(
        Array.from({ length: hosts }, (_, i) =>
          stack.client.workflow.start('timerPerHost', { taskQueue, workflowId: `timer-${rounds}-${i}`, args: [`timer-${i}`, 200, rounds] }),
        ),
      );
      await Promise.all(handles.map((h) => h.result()));
      const d = await Promise.all(handles.map((h) => h.describe()));
      return d.reduce((a, x) => a + x.historyLength, 0);
    };
    const one = await lengths(1);
    const three = await lengths(3);
    return { hosts, perHostPerInterval: (three - one) / 2 / hosts };
  } finally {
    await stop();
  }
}

/** The baseline's query: one host's newest point of the same series, over the same window. */
async function lastPointOfHost(influx: ActivityDeps['influx'], hostId: string): Promise<number | null> {
  const flux =
    `from(bucket: ${fluxString(influx.bucket)}) |> range(start: -${WINDOW_MS}ms)` +
    ` |> filter(fn: (r) => r._measurement == ${fluxString(FRESHNESS_SERIES.measurement)} and r._field == ${fluxString(FRESHNESS_SERIES.field)} and r.host_id == ${fluxString(hostId)})` +
    ` |> last() |> keep(columns: ["_time"])`;
  const rows = await queryApi(influx).collectRows<{ _time: string }>(flux);
  return rows.length ? Date.parse(rows[0]._time) : null;
}

function telegrafLines(hostId: string, t: number): string[] {
  const tags = `host_id=${hostId},host=${hostId}`;
  return [
    `${FRESHNESS_SERIES.measurement},${tags} load1=0.1,load5=0.1,load15=0.1,n_cpus=2i,${FRESHNESS_SERIES.field}=${Math.floor(t / 1000)}i ${t}`,
    `cpu,${tags},cpu=cpu-total usage_idle=97.5,usage_user=1.5,usage_system=1 ${t}`,
    `mem,${tags} used_percent=42.1,available=1000000i,total=2000000i ${t}`,
  ];
}

const uptimeLine = (hostId: string, t: number) => `${FRESHNESS_SERIES.measurement},host_id=${hostId},host=${hostId} ${FRESHNESS_SERIES.field}=${Math.floor(t / 1000)}i ${t}`;

/**
 * Line protocol to the v2 write endpoint in batches of 5000, each awaited (what Telegraf's influxdb_v2 output does).
 * Not the client's write API: its close() does not wait for batches already sent, so a query right after can miss
 * points that are still on their way (seen here: 0 rows, then a partial set, for 570,000 lines).
 */
async function writeLines(influx: ActivityDeps['influx'], lines: string[]): Promise<void> {
  const url = `${influx.url}/api/v2/write?org=${encodeURIComponent(influx.org)}&bucket=${encodeURIComponent(influx.bucket)}&precision=ms`;
  for (let i = 0; i < lines.length; i += 5000) {
    const res = await fetch(url, { method: 'POST', headers: { authorization: `Token ${influx.token}` }, body: lines.slice(i, i + 5000).join('\n') });
    if (res.status !== 204) throw new Error(`write: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
  }
}

async function influxQl(stack: BenchStack, q: string): Promise<void> {
  const res = await fetch(`${stack.influx.url}/query`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ q }) });
  if (!res.ok) throw new Error(`InfluxQL ${q}: HTTP ${res.status}`);
}

/**
 * Summed history length of the given workflows, from describe (authoritative; visibility's historyLength of a
 * running workflow is not kept current).
 */
async function historyTotal(client: Client, workflowIdList: readonly string[], perWorkflow?: Map<string, number>): Promise<number> {
  let total = 0;
  await pool(workflowIdList, 32, async (id) => {
    const { historyLength } = await client.workflow.getHandle(id).describe();
    total += historyLength;
    perWorkflow?.set(id, historyLength);
  });
  return total;
}

/** Event types beyond the five a report costs (signaled, task scheduled/started/completed, upsert), in a sample. */
async function extraEventTypes(client: Client, lengths: Map<string, number>, before: number, sample = 50): Promise<string> {
  const ids = [...lengths].filter(([, n]) => n > before + 5).map(([id]) => id).slice(0, sample);
  if (ids.length === 0) return 'none';
  const tally = new Map<string, number>();
  for (const id of ids) {
    const h = await client.workflow.getHandle(id).fetchHistory();
    for (const e of (h.events ?? []).slice(before)) {
      const type = e.eventType != null ? (temporal.api.enums.v1.EventType[e.eventType] ?? String(e.eventType)).replace(/^EVENT_TYPE_/, '') : '?';
      tally.set(type, (tally.get(type) ?? 0) + 1);
    }
  }
  return `${[...lengths.values()].filter((n) => n > before + 5).length} hosts got more than 5; event types in ${ids.length} of them: ` +
    [...tally].map(([t, n]) => `${t} ${n}`).join(', ');
}

async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}
