import { InfluxDB } from '@influxdata/influxdb-client';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { FRESHNESS_SERIES, lastPointTimes, sweepFreshness, type SweepFreshnessInput } from '../../activities/metrics/freshness';
import type { ActivityDeps } from '../../activities/deps';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { dataConverterFor } from '../../lib/temporal';
import { workflowIds } from '../../workflows/contracts';
import type { FreshnessReport } from '../../workflows/host/messages';
import { HostFreshnessKey, HostIdKey } from '../../workflows/search-attributes';
import { failureOf } from '../support/failures';
import { eventually, testClient, testStack, uniqueName } from '../support/stack';
import { freshnessReportsQuery, hostLifecycle, stopStandInSignal } from './fake-host-workflows';

// The freshness sweep against the real InfluxDB and dev server of the jest globalSetup, with stand-in host
// entities (test/activities/fake-host-workflows.ts) on a task queue of this file's own.

const keyring = Keyring.forTests();

/** Line protocol through the client's write API, ms precision. */
async function writeLines(lines: string[]): Promise<void> {
  const { url, token, org, bucket } = testStack().influx;
  const w = new InfluxDB({ url, token }).getWriteApi(org, bucket, 'ms');
  w.writeRecords(lines);
  await w.close();
}

const uptime = (hostId: string, atMs: number, host = 'h') => `${FRESHNESS_SERIES.measurement},host_id=${hostId},host=${host} ${FRESHNESS_SERIES.field}=1i ${atMs}`;

describe('lastPointTimes (real InfluxDB)', () => {
  it('returns the newest point of exactly the hosts written within the window, in one query', async () => {
    const p = uniqueName('lpt');
    const now = Date.now();
    const [a, b, old, cpuOnly] = ['a', 'b', 'old', 'cpu'].map((s) => `${p}-${s}`);
    await writeLines([
      uptime(a, now - 30_000),
      uptime(a, now - 10_000),
      // Two series of one host (its hostname changed): the newest of both counts.
      uptime(b, now - 20_000, 'old-name'),
      uptime(b, now - 5_000, 'new-name'),
      uptime(b, now - 40_000, 'new-name'),
      // Outside the 5-minute window.
      uptime(old, now - 10 * 60_000),
      // Not the series the sweep reads.
      `cpu,host_id=${cpuOnly} usage_idle=99 ${now - 1000}`,
    ]);
    const got = await lastPointTimes(testStack().influx, { windowMs: 5 * 60_000, nowMs: now });
    const ours = new Map([...got].filter(([id]) => id.startsWith(`${p}-`)));
    expect(ours).toEqual(new Map([[a, now - 10_000], [b, now - 5_000]]));
    // The window reaches back far enough once it is wide enough.
    const wide = await lastPointTimes(testStack().influx, { windowMs: 20 * 60_000, nowMs: now });
    expect(wide.get(old)).toBe(now - 10 * 60_000);
  });
});

describe('sweepFreshness (real InfluxDB, dev server, stand-in host entities)', () => {
  let client: Client;
  let connection: NativeConnection;
  let worker: Worker;
  let running: Promise<void>;
  let taskQueue: string;
  const log = createLogger('test');
  const deps = (influx = testStack().influx): ActivityDeps => ({ keyring, influx, log, temporal: { client, tunnelTaskQueue: 'unused' } });

  beforeAll(async () => {
    client = await testClient(keyring);
    connection = await NativeConnection.connect({ address: testStack().temporalAddress });
    taskQueue = uniqueName('freshness');
    worker = await Worker.create({
      connection,
      taskQueue,
      workflowsPath: require.resolve('./fake-host-workflows'),
      dataConverter: dataConverterFor(keyring),
    });
    running = worker.run();
  });

  afterAll(async () => {
    worker?.shutdown();
    await running?.catch(() => undefined);
    await connection?.close();
    await client?.connection.close();
  });

  const startHosts = (ids: string[]) =>
    Promise.all(
      ids.map((hostId) =>
        client.workflow.start(hostLifecycle, {
          taskQueue,
          workflowId: workflowIds.host(hostId),
          typedSearchAttributes: [{ key: HostIdKey, value: hostId }],
        }),
      ),
    );

  /** What visibility says each host last heard: the sweep's view of the fleet. */
  async function heard(): Promise<Map<string, string | undefined>> {
    const out = new Map<string, string | undefined>();
    for await (const wf of client.workflow.list({ query: `TaskQueue = '${taskQueue}' AND ExecutionStatus = 'Running'` })) {
      out.set(wf.typedSearchAttributes.get(HostIdKey) ?? wf.workflowId, wf.typedSearchAttributes.get(HostFreshnessKey));
    }
    return out;
  }
  const visibilityShows = (want: Record<string, 'fresh' | 'stale'>) =>
    eventually(async () => {
      const h = await heard();
      return Object.entries(want).every(([id, f]) => h.get(id) === f);
    }, 30_000, 200);
  const reports = (h: WorkflowHandle) => h.query(freshnessReportsQuery);
  /** The reports a stand-in recorded, once it has at least `n` (a signal is answered by the next workflow task). */
  const reportsOf = (h: WorkflowHandle, n = 1) =>
    eventually(async () => {
      const r = await reports(h);
      return r.length >= n ? r : undefined;
    });

  it('signals only hosts whose freshness changed: all at first, none when nothing changed, then the one that did', async () => {
    const p = uniqueName('sw');
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((s) => `${p}-${s}`);
    const [ha, hb, hc, hd] = await startHosts([a, b, c, d]);
    await eventually(async () => (await heard()).size === 4, 30_000, 200);
    const input: SweepFreshnessInput = { staleAfterMs: 3000, windowMs: 5 * 60_000, hostTaskQueue: taskQueue };
    const sweep = () => sweepFreshness(deps())(input);

    // a, b and c write; d never has: first sweep tells all four (none has heard anything yet).
    let t = Date.now();
    const tc = t;
    await writeLines([uptime(a, t), uptime(b, t), uptime(c, tc)]);
    const first = await sweep();
    expect(first).toMatchObject({ hostsWatched: 4, staleHosts: 1, signalled: 4, skipped: 0 });
    expect(first.pointsHosts).toBeGreaterThanOrEqual(3);
    for (const k of ['queryMs', 'listMs', 'signalMs'] as const) expect(first[k]).toBeGreaterThanOrEqual(0);
    await visibilityShows({ [a]: 'fresh', [b]: 'fresh', [c]: 'fresh', [d]: 'stale' });

    // Nothing changed: no signal at all.
    t = Date.now();
    await writeLines([uptime(a, t), uptime(b, t), uptime(c, t)]);
    const second = await sweep();
    expect(second).toMatchObject({ hostsWatched: 4, staleHosts: 1, signalled: 0 });

    // c stops writing; a and b go on: only c is told, stale, with its last point.
    const tcLast = t;
    await eventually(async () => Date.now() > tcLast + 3500, 10_000, 100);
    t = Date.now();
    await writeLines([uptime(a, t), uptime(b, t)]);
    const third = await sweep();
    expect(third).toMatchObject({ hostsWatched: 4, staleHosts: 2, signalled: 1 });
    await visibilityShows({ [a]: 'fresh', [b]: 'fresh', [c]: 'stale', [d]: 'stale' });

    // c writes again: told fresh; still nobody else.
    t = Date.now();
    await writeLines([uptime(a, t), uptime(b, t), uptime(c, t)]);
    const fourth = await sweep();
    expect(fourth).toMatchObject({ hostsWatched: 4, staleHosts: 1, signalled: 1 });

    const shape = (r: FreshnessReport[]) => r.map((x) => [x.fresh, x.lastPointAtMs]);
    expect(shape(await reportsOf(ha))).toEqual([[true, tc]]);
    expect(shape(await reportsOf(hb))).toEqual([[true, tc]]);
    expect(shape(await reportsOf(hc, 3))).toEqual([[true, tc], [false, tcLast], [true, t]]);
    expect(shape(await reportsOf(hd))).toEqual([[false, null]]);
    for (const r of await reports(hc)) expect(r.sweptAtMs).toBeGreaterThanOrEqual(tc);

    await Promise.all([ha, hb, hc, hd].map((h) => h.signal(stopStandInSignal)));
  });

  it('skips hosts it is not watching and hosts without a host entity', async () => {
    const p = uniqueName('nw');
    await writeLines([uptime(`${p}-unwatched`, Date.now())]);
    const [h] = await startHosts([`${p}-watched`]);
    await eventually(async () => (await heard()).has(`${p}-watched`), 30_000, 200);
    const r = await sweepFreshness(deps())({ staleAfterMs: 60_000, hostTaskQueue: taskQueue });
    // Only the watched host is told (stale: it never wrote); the unwatched host's points make no signal.
    expect(r.signalled).toBe(1);
    expect(r.pointsHosts).toBeGreaterThanOrEqual(1);
    expect(await reportsOf(h)).toEqual([expect.objectContaining({ fresh: false, lastPointAtMs: null })]);
    await h.signal(stopStandInSignal);
  });

  it('names InfluxUnreachable (retryable) when InfluxDB does not answer, and tells no host anything', async () => {
    const p = uniqueName('down');
    const [h] = await startHosts([`${p}-a`]);
    const down = deps({ ...testStack().influx, url: 'http://127.0.0.1:9' });
    const err = await failureOf(sweepFreshness(down)({ staleAfterMs: 60_000, hostTaskQueue: taskQueue }));
    expect(err.type).toBe('InfluxUnreachable');
    expect(err.nonRetryable).toBe(false);
    expect(err.message).toContain('127.0.0.1:9');
    expect(await reports(h)).toEqual([]);
    await h.signal(stopStandInSignal);
  });

  it('refuses inputs that would misjudge every host', async () => {
    for (const bad of [{ staleAfterMs: 0 }, { staleAfterMs: 60_000, windowMs: 1000 }, { staleAfterMs: 1000, hostTaskQueue: "q' OR 1=1" }]) {
      const err = await failureOf(sweepFreshness(deps())(bad));
      expect(err.type).toBe('InvalidInput');
      expect(err.nonRetryable).toBe(true);
    }
  });
});
