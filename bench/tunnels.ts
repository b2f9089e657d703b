/**
 * Tunnels: ours (the tunnelKeeper workflow holding an ssh2 remote forward on the real worker, a child process)
 * vs OpenSSH autossh-style (`ssh -N -R ... -o ServerAliveInterval=1 -o ExitOnForwardFailure=yes` in a restart loop).
 *   1. reconnect time after the host-side session is killed (fleet.killSshSessions), p50/p95 over RUNS;
 *      "up again" = a GET /ping through the forward, from inside the host, answers 204;
 *   2. controller memory with 0/10/50/100/200 held tunnels: worker RSS vs the ssh clients' summed RSS and PSS;
 *   3. latency added by the forward for a 1 KiB HTTP write (keep-alive), vs the same write without it.
 *
 *   node -r @swc-node/register bench/tunnels.ts
 *   RUNS=20 TUNNEL_COUNTS=0,10,50,100,200 LAT_N=1000 node -r @swc-node/register bench/tunnels.ts
 *   RUNS=0 TUNNEL_COUNTS=none node -r @swc-node/register bench/tunnels.ts     # latency only
 * BASELINE_RESTART_DELAY_MS (default 0): pause of the restart loop before it respawns ssh (autossh respawns at once).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { shellQuote } from '../activities/ssh/shell';
import { tunnelStatus } from '../activities/tunnel/describe';
import { sealSecret } from '../lib/sealed-secret';
import { createFleet, type Fleet, type FleetHost } from '../test/fleet';
import { workflowIds, type TunnelSpec } from '../workflows/contracts';
import { TunnelIdKey } from '../workflows/search-attributes';
import { cloudrootByHand, HandWorkspace, keySsh, probeByHand, tunnelByHand, type HandHost, type HandTunnel } from './baseline/by-hand';
import { pingUntilUp, WRITE_LATENCY_PY } from './lib/host-probes';
import { asHandHost } from './lib/hosts';
import { stopKeepers } from './lib/ours';
import { pssBytes, rssBytes } from './lib/proc';
import { runBench, startStack, startWorkerProcess, type BenchStack } from './lib/stack';
import { envInt, envList, fmtMiB, fmtMs, median, percentile, printJsonResult, ratio, sleep, table, until } from './lib/stats';

const FORWARD_PORT = 18086;

runBench('tunnels', async (cleanup) => {
  const runs = envInt('RUNS', 5);
  const counts = envList('TUNNEL_COUNTS', [0, 10, 50, 100, 200]);
  const latN = envInt('LAT_N', 300);
  const restartDelayMs = envInt('BASELINE_RESTART_DELAY_MS', 0);
  const stack = await startStack(cleanup, 'tunnels');
  const worker = await startWorkerProcess(cleanup, stack);
  const fleet = await createFleet();
  cleanup.add('fleet', () => fleet.destroy());
  cleanup.add('tunnel keepers', () => stopKeepers(stack.client, stack.config.temporal.tunnelTaskQueue));
  const ws = new HandWorkspace('tunnels');
  cleanup.add('by-hand workspace', () => ws.remove());

  // ours: host "ta" (reconnect, latency) and "tm" (memory); baseline: "tb" and "tn"; "tr" reaches InfluxDB directly.
  const [ta, tb, tm, tn] = await Promise.all(['ta', 'tb', 'tm', 'tn'].map((name) => fleet.addHost({ name, topology: 'direct' })));
  const tr = await fleet.addHost({ name: 'tr', topology: 'reachable-influx', influxTarget: { host: '127.0.0.1', port: stack.influx.port } });
  const hand = new Map<FleetHost, HandHost>();
  for (const h of [ta, tb, tm, tn]) {
    const hh = asHandHost(h, `tun-${h.name}`);
    hand.set(h, hh);
    await probeByHand(ws, hh);
    await cloudrootByHand(ws, hh);
  }

  // ---------- 1. reconnect ----------
  const keeper = (h: FleetHost) => startKeeper(stack, fleet, h, ws.keyFile(hand.get(h)!.hostId));
  await keeper(ta)(`ka`, FORWARD_PORT);
  await until('ours connected', async () => (await tunnelStatus(stack.client, 'ka')).state === 'connected', 60_000);
  const loop = restartLoop(ws, hand.get(tb)!, stack.influx.port, FORWARD_PORT, restartDelayMs);
  cleanup.add('baseline restart loop', () => loop.stop());
  for (const h of [ta, tb]) await pingUntilUp(fleet, h, FORWARD_PORT, 30);

  const reconnect = async (h: FleetHost): Promise<number> => {
    const t0 = Date.now();
    // All sessions of the host (only our tunnel's exist there). With a user filter the harness misses the
    // post-auth child titled exactly "sshd: <user>" (a -N session has no @notty suffix), and the forward survives.
    await fleet.killSshSessions(h);
    const up = await pingUntilUp(fleet, h, FORWARD_PORT, 60);
    return up - t0;
  };
  const oursRc: number[] = [];
  const baseRc: number[] = [];
  for (let i = 0; i < runs; i++) {
    oursRc.push(await reconnect(ta));
    baseRc.push(await reconnect(tb));
    console.log(`  reconnect run ${i + 1}/${runs}: ours ${fmtMs(oursRc[i])}  openssh loop ${fmtMs(baseRc[i])}`);
    await sleep(1000); // let both settle (keepalives, heartbeats) before the next kill
  }

  // ---------- 3. latency (uses the forwards of part 1) ----------
  const lat = async (h: FleetHost | undefined, host: string, port: number) => {
    const args = [host, String(port), String(latN), '20', stack.influx.database].map(shellQuote).join(' ');
    const r = h
      ? await fleet.exec(h, `python3 - ${args}`, { input: WRITE_LATENCY_PY, timeoutMs: 300_000 })
      : await localPython(WRITE_LATENCY_PY, [host, String(port), String(latN), '20', stack.influx.database]);
    if (r.exitCode !== 0) throw new Error(`latency probe failed: ${r.stderr.trim()}`);
    return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms: number[] }).ms;
  };
  const relay = new URL(tr.influxUrl!);
  const latency = {
    loopback: await lat(undefined, '127.0.0.1', stack.influx.port),
    relay: await lat(tr, relay.hostname, Number(relay.port)),
    ours: await lat(ta, '127.0.0.1', FORWARD_PORT),
    openssh: await lat(tb, '127.0.0.1', FORWARD_PORT),
  };
  await loop.stop();

  // ---------- 2. memory vs tunnel count ----------
  const mem: { count: number; workerRss: number; workerHeap: number; workerRssNoGc: number; sshRss: number; sshPss: number }[] = [];
  const handTunnels: HandTunnel[] = [];
  cleanup.add('baseline tunnels', () => Promise.all(handTunnels.map((t) => t.stop())));
  const startOurs = keeper(tm);
  let oursCount = 0;
  for (const count of counts) {
    while (oursCount < count) {
      const batch = Math.min(10, count - oursCount);
      for (let j = 0; j < batch; j++) await startOurs(`km${oursCount + j}`, 20000 + oursCount + j);
      oursCount += batch;
      await until(`${oursCount} forwards on ${tm.name}`, async () => (await listeners(fleet, tm, /:20\d{3}$/)) >= oursCount, 120_000, 500);
    }
    while (handTunnels.length < count) {
      const batch = Math.min(10, count - handTunnels.length);
      handTunnels.push(...(await Promise.all(Array.from({ length: batch }, (_, j) => tunnelByHand(ws, hand.get(tn)!, stack.influx.port, 30000 + handTunnels.length + j)))));
    }
    await sleep(5000); // settle: connects done, a few heartbeats and keepalives exchanged
    const samples: NodeJS.MemoryUsage[] = [];
    for (let s = 0; s < 3; s++) {
      samples.push(await worker.memoryAfterGc());
      await sleep(1000);
    }
    const sshPids = handTunnels.map((t) => t.pid);
    const row = {
      count,
      workerRss: median(samples.map((m) => m.rss)),
      workerHeap: median(samples.map((m) => m.heapUsed + m.external + m.arrayBuffers)),
      workerRssNoGc: rssBytes(worker.pid),
      sshRss: sshPids.reduce((a, p) => a + rssBytes(p), 0),
      sshPss: sshPids.reduce((a, p) => a + pssBytes(p), 0),
    };
    mem.push(row);
    console.log(`  ${count} tunnels: worker RSS ${fmtMiB(row.workerRss)} (JS heap+external ${fmtMiB(row.workerHeap)}); ${count} ssh clients RSS ${fmtMiB(row.sshRss)}, PSS ${fmtMiB(row.sshPss)}`);
  }

  // ---------- report ----------
  console.log(`\nreconnect after the session is killed, ${runs} run(s) (target: p95 <= 3 s)`);
  console.log(table(['', 'ours', `openssh restart loop (+${restartDelayMs} ms)`, 'ratio'], [
    ['p50', fmtMs(percentile(oursRc, 50)), fmtMs(percentile(baseRc, 50)), ratio(percentile(oursRc, 50), percentile(baseRc, 50))],
    ['p95', fmtMs(percentile(oursRc, 95)), fmtMs(percentile(baseRc, 95)), ratio(percentile(oursRc, 95), percentile(baseRc, 95))],
  ]));

  let perOurs = NaN;
  let perOursHeap = NaN;
  let perSsh = NaN;
  if (mem.length) {
    const zero = mem.find((m) => m.count === 0) ?? mem[0];
    const top = mem[mem.length - 1];
    const slope = (k: 'workerRss' | 'workerHeap') => (top.count > zero.count ? (top[k] - zero[k]) / (top.count - zero.count) : NaN);
    perOurs = slope('workerRss');
    perOursHeap = slope('workerHeap');
    perSsh = top.count ? top.sshPss / top.count : NaN;
    console.log(`\ncontroller memory vs held tunnels (target: <= 0.5 MiB per idle tunnel)`);
    console.log(table(['tunnels', 'worker RSS after GC (ours)', 'worker JS heap+external', 'ssh clients RSS (openssh)', 'ssh clients PSS (openssh)'],
      mem.map((m) => [m.count, fmtMiB(m.workerRss), fmtMiB(m.workerHeap), fmtMiB(m.sshRss), fmtMiB(m.sshPss)])));
    console.log(`per tunnel: ours ${fmtMiB(perOurs)} RSS (${fmtMiB(slope('workerHeap'))} JS heap+external), slope ${zero.count}→${top.count}; ` +
      `openssh ${fmtMiB(perSsh)} (PSS per ssh process); ratio ${ratio(perOurs, perSsh)}`);
  }
  const l = (xs: number[]) => [fmtMs(percentile(xs, 50)), fmtMs(percentile(xs, 99))];
  console.log(`\n1 KiB InfluxDB write, keep-alive, ${latN} requests per path (p50 / p99)`);
  const added = (xs: number[], p: number) => fmtMs(percentile(xs, p) - percentile(latency.loopback, p));
  console.log(table(['path', 'p50', 'p99', 'added vs direct p50', 'added vs direct p99'], [
    ['direct: controller loopback', ...l(latency.loopback), '-', '-'],
    ['host → harness TCP relay (node)', ...l(latency.relay), added(latency.relay, 50), added(latency.relay, 99)],
    ['host → ours (ssh2 -R forward)', ...l(latency.ours), added(latency.ours, 50), added(latency.ours, 99)],
    ['host → openssh -R forward', ...l(latency.openssh), added(latency.openssh, 50), added(latency.openssh, 99)],
  ]));
  const pct = (xs: number[]) => ({ p50: percentile(xs, 50), p99: percentile(xs, 99) });
  printJsonResult('tunnels', {
    runs, reconnect: { ours: oursRc, openssh: baseRc, restartDelayMs },
    memory: mem, perTunnel: { ours: perOurs, oursHeap: perOursHeap, openssh: perSsh },
    latency: Object.fromEntries(Object.entries(latency).map(([k, v]) => [k, pct(v)])),
  });
});

/** Returns a starter of tunnelKeeper workflows holding forwards on `h` (bind 127.0.0.1:port → InfluxDB). */
function startKeeper(stack: BenchStack, fleet: Fleet, h: FleetHost, keyFile: string) {
  const privateKey = sealSecret(stack.keyring, readFileSync(keyFile, 'utf8'));
  let pinned: Promise<string> | undefined;
  return async (tunnelId: string, port: number) => {
    pinned ??= fleet.hostKeySha256(h);
    const spec: TunnelSpec = {
      tunnelId,
      ssh: { address: h.address, port: h.sshPort, credential: { username: 'cloudroot', privateKey }, hostKeySha256: await pinned },
      bind: { address: '127.0.0.1', port },
      target: { host: '127.0.0.1', port: stack.influx.port },
      // HEALTHY_RESET_MS: how long a session must have been up for a drop to restart at attempt 1 (product
      // default 5 min; back-to-back kills in this bench need a small value to exercise it).
      ...(process.env.HEALTHY_RESET_MS ? { timing: { healthyResetMs: Number(process.env.HEALTHY_RESET_MS) } } : {}),
    };
    await stack.client.workflow.start('tunnelKeeper', {
      args: [spec],
      taskQueue: stack.config.temporal.tunnelTaskQueue,
      workflowId: workflowIds.tunnel(tunnelId),
      workflowIdConflictPolicy: 'USE_EXISTING',
      typedSearchAttributes: [{ key: TunnelIdKey, value: tunnelId }],
    });
  };
}

/** autossh-style: OpenSSH with keepalives and ExitOnForwardFailure, respawned by a shell loop when it exits. */
function restartLoop(ws: HandWorkspace, h: HandHost, influxPort: number, port: number, delayMs: number) {
  const ssh = ['ssh', ...keySsh(ws, h, [
    '-N', '-o', 'ServerAliveInterval=1', '-o', 'ServerAliveCountMax=3', '-o', 'ExitOnForwardFailure=yes',
    '-R', `127.0.0.1:${port}:127.0.0.1:${influxPort}`,
  ])].map(shellQuote).join(' ');
  const pause = delayMs > 0 ? `sleep ${(delayMs / 1000).toFixed(3)}` : ':';
  const child = spawn('bash', ['-c', `while :; do ${ssh}; ${pause}; done`], { detached: true, stdio: 'ignore' });
  child.on('error', () => undefined);
  return {
    async stop() {
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        /* gone */
      }
    },
  };
}

async function listeners(fleet: Fleet, h: FleetHost, port: RegExp): Promise<number> {
  const r = await fleet.exec(h, 'ss -Hltn', { timeoutMs: 10_000 });
  return r.stdout.split('\n').filter((l) => port.test(l.trim().split(/\s+/)[3] ?? '')).length;
}

function localPython(script: string, args: string[]): Promise<{ exitCode: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn('python3', ['-', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b) => (stdout += b));
    c.stderr.on('data', (b) => (stderr += b));
    c.on('close', (exitCode) => resolve({ exitCode, stdout, stderr }));
    c.stdin.end(script);
  });
}

