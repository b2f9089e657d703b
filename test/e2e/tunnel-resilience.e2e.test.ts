import type { Client, WorkflowHandle } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createAnsibleActivities } from '../../activities/ansible';
import type { ActivityDeps } from '../../activities/deps';
import { createSshActivities } from '../../activities/ssh';
import { createTunnelActivities, tunnelStatus } from '../../activities/tunnel';
import { bundleWorkflows } from '../../apps/worker/bundle';
import { influxHostPort } from '../../lib/config';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { sealSecret } from '../../lib/sealed-secret';
import { workflowIds, type AgentInstallSummary, type CloudrootResult, type SshTarget, type TunnelSpec, type TunnelStats, type TunnelStatus } from '../../workflows/contracts';
import { stopTunnelUpdate } from '../../workflows/messages';
import type { tunnelKeeper } from '../../workflows/tunnel-keeper';
import { createFleet, fleetUnsupportedReason, type Fleet, type FleetHost } from '../fleet';
import { eventually, testClient, testStack, uniqueName } from '../support/stack';
import { startWorkerProcess, writeBundleFiles, type BundleFiles, type WorkerProcess } from '../support/worker-process';

// The tunnel keeper's promises, measured with nothing faked: real Temporal, real sshd on a fleet host that
// cannot reach InfluxDB, real Telegraf (installed by the real playbook, 1 s interval) writing through the real
// keeper's forward into a real InfluxDB, and the keeper's activity in two separate worker processes.
// Claims: a killed session or a silent outage is healed by the retry loop, a crashed worker's forward moves to
// another worker after the heartbeat timeout, and Telegraf's buffer makes all of it lossless.

const unsupported = fleetUnsupportedReason();
const suite = unsupported ? describe.skip : describe;
if (unsupported) console.warn(`tunnel resilience e2e skipped: ${unsupported}`);

/** How long the silent outage lasts (the issue asks for 60 s); override with AO_TUNNEL_OUTAGE_MS. */
const OUTAGE_MS = Number(process.env.AO_TUNNEL_OUTAGE_MS ?? 60_000);
const BIND_PORT = 18086;
/** Margin at the edges of a disturbance window: the seconds right at the edge are not what is being proven. */
const EDGE_MS = 2_000;
/** Telegraf flushes every 10 s (+ up to 2 s jitter) and then writes its whole backlog; polls allow for that. */
const FLUSH_SLACK_MS = 30_000;

jest.setTimeout(300_000);

const keyring = Keyring.forTests('tunnel-resilience');
const log = createLogger('test-tunnel-resilience');

/** The deliberate part of the outage test: the network stays silent this long. */
function holdOutage(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function report(scenario: string, numbers: Record<string, unknown>): void {
  console.log(JSON.stringify({ test: 'tunnel-resilience', scenario, ...numbers }));
}

// ---------- InfluxDB (InfluxQL over HTTP; 1.8 in the test stack) ----------

type Row = [number, ...Array<number | string | null>];

async function influxQL(q: string): Promise<Row[]> {
  const { url, bucket } = testStack().influx;
  const db = bucket.split('/')[0];
  const res = await fetch(`${url}/query?db=${encodeURIComponent(db)}&epoch=ms&q=${encodeURIComponent(q)}`);
  if (!res.ok) throw new Error(`InfluxDB query failed: HTTP ${res.status}`);
  const body = (await res.json()) as { results?: Array<{ error?: string; series?: Array<{ values: Row[] }> }> };
  const r = body.results?.[0];
  if (r?.error) throw new Error(`InfluxDB query failed: ${r.error}`);
  return r?.series?.[0]?.values ?? [];
}

const tag = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** Timestamps (ms) of the chosen series, `mem` of this host: one point per Telegraf gather. */
async function memTimes(hostId: string, afterMs: number, beforeMs = Date.now() + 60_000): Promise<number[]> {
  const rows = await influxQL(`SELECT "used" FROM "mem" WHERE "host_id" = ${tag(hostId)} AND time > ${Math.floor(afterMs)}ms AND time < ${Math.ceil(beforeMs)}ms`);
  return rows.map((r) => r[0]);
}

/** The corroborating series, `cpu` (cpu-total), gathered by its own input on its own schedule. */
async function cpuTimes(hostId: string, afterMs: number, beforeMs: number): Promise<number[]> {
  const rows = await influxQL(
    `SELECT "usage_idle" FROM "cpu" WHERE "host_id" = ${tag(hostId)} AND "cpu" = 'cpu-total' AND time > ${Math.floor(afterMs)}ms AND time < ${Math.ceil(beforeMs)}ms`,
  );
  return rows.map((r) => r[0]);
}

/** The whole seconds strictly inside (fromMs, toMs). */
function wholeSeconds(fromMs: number, toMs: number): number[] {
  const out: number[] = [];
  for (let s = Math.floor(fromMs / 1000) * 1000 + 1000; s < toMs; s += 1000) out.push(s);
  return out;
}

/**
 * Which whole seconds of a window are in InfluxDB. Telegraf stamps a point with the gather time rounded to the
 * second (precision follows the 1 s interval), so a gather that the scheduler delays by more than half a second
 * lands on the next second and overwrites it: a one-second hole in one input's series that has nothing to do
 * with delivery. Delivery loses whole batches (about 1000 metrics, every input, ~15 s here), so a second counts
 * as lost only when neither `mem` nor `cpu` has it; `memHoles` reports the single-series holes for the record.
 */
interface GapReport {
  window: { fromMs: number; toMs: number };
  expected: number;
  memPresent: number;
  memHoles: number[];
  missing: number[];
  notWholeSeconds: number[];
}

async function gapReport(hostId: string, fromMs: number, toMs: number): Promise<GapReport> {
  const [mem, cpu] = await Promise.all([memTimes(hostId, fromMs, toMs), cpuTimes(hostId, fromMs, toMs)]);
  const memSet = new Set(mem);
  const cpuSet = new Set(cpu);
  const expected = wholeSeconds(fromMs, toMs);
  return {
    window: { fromMs, toMs },
    expected: expected.length,
    memPresent: expected.filter((s) => memSet.has(s)).length,
    memHoles: expected.filter((s) => !memSet.has(s)),
    missing: expected.filter((s) => !memSet.has(s) && !cpuSet.has(s)),
    notWholeSeconds: [...mem, ...cpu].filter((t) => t % 1000 !== 0),
  };
}

/**
 * Waits until Telegraf has flushed past `toMs` (its buffer is written oldest first), then until the window is
 * complete or a flush interval more has passed; returns the final picture for the assertion.
 */
async function settledGapReport(hostId: string, fromMs: number, toMs: number): Promise<GapReport> {
  await eventually(async () => (await memTimes(hostId, toMs + 1_000)).length > 0, FLUSH_SLACK_MS + 60_000, 500);
  let last = await gapReport(hostId, fromMs, toMs);
  if (last.missing.length > 0) {
    await eventually(async () => {
      last = await gapReport(hostId, fromMs, toMs);
      return last.missing.length === 0;
    }, FLUSH_SLACK_MS, 1_000).catch(() => undefined);
  }
  return last;
}

/** Telegraf's own bookkeeping for its output (inputs.internal): metrics dropped from a full buffer, ever. */
async function telegrafDropped(hostId: string, sinceMs: number): Promise<{ samples: number; maxDropped: number }> {
  const rows = await influxQL(`SELECT "metrics_dropped" FROM "internal_write" WHERE "host_id" = ${tag(hostId)} AND time > ${Math.floor(sinceMs)}ms`);
  return { samples: rows.length, maxDropped: Math.max(0, ...rows.map((r) => Number(r[1] ?? 0))) };
}

async function telegrafBufferPeak(hostId: string, fromMs: number, toMs: number): Promise<number> {
  const rows = await influxQL(
    `SELECT max("buffer_size") FROM "internal_write" WHERE "host_id" = ${tag(hostId)} AND time > ${Math.floor(fromMs)}ms AND time < ${Math.ceil(toMs)}ms`,
  );
  return Number(rows[0]?.[1] ?? 0);
}

suite('tunnel keeper resilience (fleet + Telegraf + InfluxDB + worker processes)', () => {
  const stack = unsupported ? undefined : testStack();
  const onboardingQueue = uniqueName('resil-onb');
  const tunnelQueue = uniqueName('resil-tun');
  const hostId = uniqueName('resil');
  const tunnelId = hostId;
  let fleet: Fleet;
  let host: FleetHost;
  let client: Client;
  let bundleFiles: BundleFiles | undefined;
  const workers: WorkerProcess[] = [];
  let handle: WorkflowHandle<typeof tunnelKeeper>;
  let agent: AgentInstallSummary;

  const status = (): Promise<TunnelStatus> => tunnelStatus(client, tunnelId);
  const attemptOf = (s: TunnelStatus) => s.attempt ?? 1;

  /** The identity of the worker running the current holdReverseForward attempt, as the server sees it. */
  async function holderIdentity(): Promise<string | undefined> {
    const d = await handle.describe();
    const pending = (d.raw.pendingActivities ?? []).find((p) => p.activityType?.name === 'holdReverseForward');
    return pending?.lastWorkerIdentity || undefined;
  }

  /** Polls the keeper until it is connected on an attempt after `afterAttempt`. */
  async function connectedAfter(afterAttempt: number, timeoutMs: number, extra?: (s: TunnelStatus) => Promise<boolean>): Promise<TunnelStatus> {
    return eventually(async () => {
      const s = await status();
      if (s.state !== 'connected' || attemptOf(s) <= afterAttempt) return undefined;
      if (extra && !(await extra(s))) return undefined;
      return s;
    }, timeoutMs, 200);
  }

  /** An HTTP request through the forward, from inside the host: InfluxDB answers /ping with 204. */
  async function pingThroughForward(): Promise<boolean> {
    const py = `import http.client\nc = http.client.HTTPConnection("127.0.0.1", ${BIND_PORT}, timeout=3)\nc.request("GET", "/ping")\nprint(c.getresponse().status)\n`;
    const r = await fleet.exec(host, 'python3 -', { input: py, timeoutMs: 15_000 });
    return r.exitCode === 0 && r.stdout.trim() === '204';
  }

  async function startWorker(identity: string): Promise<WorkerProcess> {
    const w = await startWorkerProcess({
      identity,
      bundle: bundleFiles,
      env: {
        TEMPORAL_ADDRESS: stack!.temporalAddress,
        AO_MASTER_KEYS: keyring.toSpec(),
        INFLUX_URL: stack!.influx.url,
        INFLUX_BUCKET: stack!.influx.bucket,
        INFLUX_TOKEN: stack!.influx.token,
        AO_ONBOARDING_TASK_QUEUE: onboardingQueue,
        AO_TUNNEL_TASK_QUEUE: tunnelQueue,
      },
    });
    workers.push(w);
    return w;
  }

  beforeAll(async () => {
    const s = stack!;
    let bundle;
    [fleet, client, bundle] = await Promise.all([createFleet(), testClient(keyring), bundleWorkflows()]);
    bundleFiles = writeBundleFiles(bundle);
    host = await fleet.addHost({ name: 'resil', topology: 'direct' });

    const deps: ActivityDeps = { keyring, log, influx: s.influx, telegrafArtifact: s.telegrafPath };
    const env = new MockActivityEnvironment();
    const setUpHost = async () => {
      // The real activities, as the onboarding workflow runs them: cloudroot over the bootstrap login, then the
      // playbook as cloudroot. Telegraf writes to the forward's local end, which does not exist yet (it buffers).
      const bootstrap: SshTarget = {
        address: host.address,
        port: host.sshPort,
        hostKeySha256: await fleet.hostKeySha256(host),
        credential: { username: host.bootstrapUser, password: sealSecret(keyring, host.bootstrapPassword) },
      };
      const cloudroot = (await env.run(createSshActivities(deps).createCloudroot, { hostId, target: bootstrap })) as CloudrootResult;
      const target: SshTarget = { ...bootstrap, credential: { username: cloudroot.username, privateKey: cloudroot.privateKey } };
      agent = (await env.run(createAnsibleActivities(deps).installAgent, {
        hostId,
        target,
        agent: { mode: 'artifact' as const, interval: '1s' },
        outputUrl: `http://127.0.0.1:${BIND_PORT}`,
      })) as AgentInstallSummary;
      return target;
    };
    // Two separate worker processes poll the tunnel queue (and onboarding, like the real worker).
    const [target] = await Promise.all([setUpHost(), startWorker('resil-worker-a'), startWorker('resil-worker-b')]);

    const spec: TunnelSpec = {
      tunnelId,
      ssh: target,
      bind: { address: '127.0.0.1', port: BIND_PORT },
      target: influxHostPort(s.influx.url),
      timing: { keepaliveIntervalMs: 1_000, keepaliveCountMax: 2, heartbeatMs: 1_000 },
    };
    // The real ensureTunnel: starts the keeper on the tunnel queue and waits until it heartbeats "connected".
    const tunnels = createTunnelActivities({ keyring, log, temporal: { client, tunnelTaskQueue: tunnelQueue } });
    const stats = (await new MockActivityEnvironment().run(tunnels.ensureTunnel, spec, { connectDeadlineMs: 90_000 })) as TunnelStats;
    expect(stats).toMatchObject({ connected: true, boundPort: BIND_PORT });
    handle = client.workflow.getHandle<typeof tunnelKeeper>(workflowIds.tunnel(tunnelId));
  }, 420_000);

  afterAll(async () => {
    if (handle) {
      const d = await handle.describe().catch(() => undefined);
      if (d?.status.name === 'RUNNING') await handle.terminate('test over').catch(() => undefined);
    }
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    const orphans = workers.filter((w) => w.isAlive()).map((w) => w.pid);
    if (orphans.length) console.error(`worker processes still alive after SIGKILL: ${orphans.join(', ')}`);
    await fleet?.destroy();
    await client?.connection.close();
    bundleFiles?.remove();
  });

  test('Telegraf points flow through the forward, one per second on whole seconds', async () => {
    // Verify the counting assumption on undisturbed data first: a 1 s interval (precision follows it) gives
    // whole-second timestamps and one point per second.
    const times = await eventually(async () => {
      const t = await memTimes(hostId, agent.agentStartedAtMs);
      return t.length >= 12 ? t : undefined;
    }, 90_000, 500);
    expect(times.filter((t) => t % 1000 !== 0)).toEqual([]);
    const newest = Math.max(...times);
    const baseline = await gapReport(hostId, newest - 11_000, newest + 1);
    report('baseline', { secondsExpected: baseline.expected, memSecondsPresent: baseline.memPresent, memHoles: baseline.memHoles.length });
    expect(baseline).toMatchObject({ expected: 11, missing: [], notWholeSeconds: [] });
    expect(await pingThroughForward()).toBe(true);
  });

  test('killed ssh session: the keeper reconnects and no point is lost', async () => {
    const before = await connectedAfter(0, 30_000);
    const killedAt = Date.now();
    await fleet.killSshSessions(host);
    const reconnected = await connectedAfter(attemptOf(before), 60_000);
    const forwardMs = Date.now() - killedAt;
    expect(reconnected.stats?.reconnects).toBe(attemptOf(reconnected) - 1);
    expect(reconnected.stats!.reconnects).toBeGreaterThan(before.stats!.reconnects);
    await eventually(() => pingThroughForward(), 30_000, 250);
    const pingMs = Date.now() - killedAt;
    await eventually(async () => (await memTimes(hostId, killedAt)).length > 0, FLUSH_SLACK_MS + 30_000, 250);
    const firstPointMs = Date.now() - killedAt;

    const gap = await settledGapReport(hostId, killedAt - 5_000, killedAt + forwardMs + 5_000);
    report('session-kill', {
      killToForwardMs: forwardMs,
      killToPingThroughForwardMs: pingMs,
      killToFirstNewPointMs: firstPointMs,
      attempts: `${attemptOf(before)} -> ${attemptOf(reconnected)}`,
      lastFailure: reconnected.lastFailure,
      secondsExpected: gap.expected,
      secondsMissing: gap.missing.length,
      memHoles: gap.memHoles.length,
    });
    expect(gap.notWholeSeconds).toEqual([]);
    expect(gap.missing).toEqual([]);
  });

  test(`silent outage (${OUTAGE_MS / 1000} s of dropped packets): detected, healed, zero points lost`, async () => {
    const before = await connectedAfter(0, 30_000);
    const dropIssuedAt = Date.now();
    await fleet.dropPackets(host, true);
    // The window counted is the one in which the drop was certainly in effect (tc takes a moment under load).
    const outageStart = Date.now();
    let outageEnd = 0;
    let restored = false;
    try {
      // Detection runs alongside the deliberate hold: the keepalive (1 s x 2) notices the silence.
      const detection = eventually(async () => {
        const s = await status();
        return s.state !== 'connected' ? { s, atMs: Date.now() } : undefined;
      }, OUTAGE_MS + 30_000, 200);
      detection.catch(() => undefined);
      await holdOutage(OUTAGE_MS);
      // Nothing gathered during the outage can have reached InfluxDB yet: the outage really cut the path.
      const leaked = await memTimes(hostId, outageStart + EDGE_MS);
      outageEnd = Date.now();
      await fleet.dropPackets(host, false);
      restored = true;
      const restoredAt = Date.now();
      const detected = await detection;

      const reconnected = await connectedAfter(attemptOf(before), 120_000);
      const forwardMs = Date.now() - restoredAt;
      await eventually(async () => (await memTimes(hostId, restoredAt)).length > 0, FLUSH_SLACK_MS + 30_000, 250);
      const firstNewPointMs = Date.now() - restoredAt;
      const gap = await settledGapReport(hostId, outageStart + EDGE_MS, outageEnd - EDGE_MS);
      const backlogMs = Date.now() - restoredAt;
      const dropped = await eventually(async () => {
        const d = await telegrafDropped(hostId, restoredAt);
        return d.samples > 0 ? d : undefined;
      }, FLUSH_SLACK_MS, 1_000);
      const bufferPeak = await telegrafBufferPeak(hostId, outageStart, outageEnd);

      report('silent-outage', {
        outageMs: outageEnd - outageStart,
        dropToDetectedMs: detected.atMs - dropIssuedAt,
        detectedState: detected.s.state,
        restoreToForwardMs: forwardMs,
        restoreToFirstNewPointMs: firstNewPointMs,
        restoreToBacklogCompleteMs: backlogMs,
        attempts: `${attemptOf(before)} -> ${attemptOf(reconnected)}`,
        lastFailure: reconnected.lastFailure,
        secondsExpected: gap.expected,
        secondsMissing: gap.missing.length,
        memHoles: gap.memHoles.length,
        telegrafBufferPeak: bufferPeak,
        telegrafMetricsDropped: dropped.maxDropped,
      });
      expect(leaked).toEqual([]);
      expect(['reconnecting', 'connecting']).toContain(detected.s.state);
      expect(reconnected.stats!.reconnects).toBeGreaterThan(before.stats!.reconnects);
      expect(gap.expected).toBeGreaterThanOrEqual(Math.floor((OUTAGE_MS - 2 * EDGE_MS) / 1000) - 1);
      expect(gap.notWholeSeconds).toEqual([]);
      expect(gap.missing).toEqual([]);
      expect(bufferPeak).toBeGreaterThan(0); // the points were held back by Telegraf, then delivered
      expect(dropped.maxDropped).toBe(0);
    } finally {
      if (!restored) await fleet.dropPackets(host, false);
    }
  });

  test('worker process killed: the other worker takes the forward over, no point lost', async () => {
    expect(workers.filter((w) => w.isAlive())).toHaveLength(2);
    const before = await connectedAfter(0, 30_000);
    const holderId = await eventually(holderIdentity, 15_000, 200);
    const victim = workers.find((w) => w.identity === holderId);
    expect(victim).toBeDefined();
    const survivor = workers.find((w) => w !== victim)!;

    const killedAt = Date.now();
    await victim!.stop('SIGKILL');
    const takenOver = await connectedAfter(attemptOf(before), 90_000, async () => (await holderIdentity()) === survivor.identity);
    const takeoverMs = Date.now() - killedAt;
    expect(victim!.isAlive()).toBe(false);
    await eventually(async () => (await memTimes(hostId, killedAt)).length > 0, FLUSH_SLACK_MS + 30_000, 250);
    const firstNewPointMs = Date.now() - killedAt;
    const gap = await settledGapReport(hostId, killedAt - 5_000, killedAt + takeoverMs + 5_000);
    const dropped = await telegrafDropped(hostId, killedAt);

    report('worker-failover', {
      killed: victim!.identity,
      survivor: survivor.identity,
      killToTakeoverMs: takeoverMs,
      killToFirstNewPointMs: firstNewPointMs,
      attempts: `${attemptOf(before)} -> ${attemptOf(takenOver)}`,
      lastFailure: takenOver.lastFailure,
      secondsExpected: gap.expected,
      secondsMissing: gap.missing.length,
      memHoles: gap.memHoles.length,
      telegrafMetricsDropped: dropped.maxDropped,
    });
    expect(takenOver.stats!.reconnects).toBeGreaterThan(before.stats!.reconnects);
    // Nobody told the server the worker died: the attempt ended by its heartbeat timeout (3 x heartbeatMs).
    expect(takenOver.lastFailure).toMatch(/heartbeat timeout/i);
    expect(gap.notWholeSeconds).toEqual([]);
    expect(gap.missing).toEqual([]);
    expect(dropped.maxDropped).toBe(0);
  });

  test('stop: no listener left on the host, the activity ended, the keeper completed', async () => {
    await connectedAfter(0, 30_000);
    expect(await handle.executeUpdate(stopTunnelUpdate)).toEqual({ stopped: true });
    // The update answers only after the activity unforwarded, so the listener is already gone.
    const ss = await fleet.exec(host, `ss -Hltn 'sport = :${BIND_PORT}'`);
    expect(ss.exitCode).toBe(0);
    expect(ss.stdout.trim()).toBe('');
    await handle.result();
    const d = await handle.describe();
    expect(d.status.name).toBe('COMPLETED');
    expect(d.raw.pendingActivities ?? []).toEqual([]);
    expect((await status()).state).toBe('stopped');
  });

  test('the worker processes end and leave no orphans', async () => {
    // SIGTERM is the real worker's graceful shutdown; SIGKILL only if it does not finish in time.
    await Promise.all(workers.map((w) => w.stop('SIGTERM', 15_000)));
    const signalZero = (pid: number) => {
      try {
        process.kill(pid, 0);
        return 'alive';
      } catch (e) {
        return (e as NodeJS.ErrnoException).code;
      }
    };
    expect(workers.map((w) => signalZero(w.pid))).toEqual(workers.map(() => 'ESRCH'));
  });
});
