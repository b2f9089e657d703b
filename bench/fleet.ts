/**
 * Fleet onboarding: N hosts at once through the product (N onboardHost workflows on one worker) vs the
 * hand-run way (one operator script: parallel bootstrap, ONE `ansible-playbook -f N`, N `ssh -R`, poll InfluxDB).
 * Makespan, hosts/minute, controller CPU and peak RSS; then the same with SLOW hosts CPU-throttled.
 * Slowness: this kernel has no netem (fleet.setLatency throws), so a slow host is one whose processes are in a
 * cgroup-v1 CPU group capped at SLOW_CPU_PCT % of one core (its sshd, sudo, python: everything Ansible runs there).
 *
 *   node -r @swc-node/register bench/fleet.ts                 # N=10, then N=10 with 3 slow
 *   FLEET_SIZES=10,20 SLOW=3 SLOW_CPU_PCT=10 node -r @swc-node/register bench/fleet.ts
 *   OURS=hosts …                                             # ours as one onboardHost per host (before fleets)
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createFleet, type Fleet, type FleetHost } from '../test/fleet';
import { repoRoot } from '../apps/devstack/toolchain';
import { addDirectHosts, asHandHost, throttleHostCpu } from './lib/hosts';
import { onboardInput, runFleet, startOnboarding, stopHostEntities, stopKeepers } from './lib/ours';
import { cpuMs, resetPeakRss, TreeRssSampler } from './lib/proc';
import { runBench, startStack, startWorkerProcess, type BenchStack, type WorkerProcess, type Cleanup } from './lib/stack';
import { envInt, envList, fmtMiB, fmtMs, printJsonResult, ratio, table } from './lib/stats';

/** `fleet` (default): one onboardFleet request; `hosts`: one onboardHost workflow per host, as before fleets. */
const OURS = process.env.OURS === 'hosts' ? 'hosts' : 'fleet';

interface SideResult {
  makespanMs: number;
  hostsPerMin: number;
  cpuMs: number;
  /** Temporal dev server CPU (ours only: the baseline has no server). */
  serverCpuMs?: number;
  peakRssBytes: number;
  doneAtMs: number[];
  /** When the last host that was not slowed down was done (the slow hosts are the first `slow` of each side). */
  fastMakespanMs: number;
}

/** The makespan of the hosts after the first `slow` (doneAt in host order). */
function fastMakespan(doneAtInOrder: number[], slow: number): number {
  return Math.max(...doneAtInOrder.slice(slow), 0);
}

runBench('fleet', async (cleanup) => {
  const sizes = envList('FLEET_SIZES', [10]);
  const slow = envInt('SLOW', 3);
  const slowPct = envInt('SLOW_CPU_PCT', 10);
  const stack = await startStack(cleanup, 'fleet');
  const worker = await startWorkerProcess(cleanup, stack);
  const fleet = await createFleet();
  cleanup.add('fleet', () => fleet.destroy());
  cleanup.add('tunnel keepers', () => stopKeepers(stack.client, stack.config.temporal.tunnelTaskQueue));

  const variants = [...sizes.map((n) => ({ n, slow: 0 })), ...(slow > 0 ? [{ n: sizes[0], slow }] : [])];
  const results: { n: number; slow: number; ours: SideResult; base: SideResult }[] = [];
  let round = 0;
  for (const v of variants) {
    const tag = `v${round++}`;
    console.log(`fleet: N=${v.n}${v.slow ? `, ${v.slow} slow (${slowPct}% of a core)` : ''}`);
    const ours = await side(fleet, `${tag}o`, v, slowPct, (hosts) => runOurs(stack, worker, hosts, tag, v.slow));
    console.log(`  ours:    makespan ${fmtMs(ours.makespanMs)}`);
    const base = await side(fleet, `${tag}b`, v, slowPct, (hosts) => runBaseline(stack, cleanup, hosts, tag, v.slow));
    console.log(`  by hand: makespan ${fmtMs(base.makespanMs)}`);
    // Each variant's figures as soon as it is done (a long run that is stopped early keeps what it measured).
    console.log(`  ratio ${ratio(ours.makespanMs, base.makespanMs)}${v.slow ? `, fast hosts ${fmtMs(ours.fastMakespanMs)} / ${fmtMs(base.fastMakespanMs)} (${ratio(ours.fastMakespanMs, base.fastMakespanMs)})` : ''}; CPU/host ours ${fmtMs(ours.cpuMs / v.n)} (+server ${fmtMs((ours.serverCpuMs ?? 0) / v.n)}), by hand ${fmtMs(base.cpuMs / v.n)}; peak RSS ours ${fmtMiB(ours.peakRssBytes)}, by hand ${fmtMiB(base.peakRssBytes)}`);
    results.push({ ...v, ours, base });
  }

  console.log('\nfleet onboarding (controller = worker process + its children for ours; the operator script\'s children for the baseline)');
  console.log(table(
    ['hosts', 'slow', 'makespan ours', 'makespan by hand', 'ratio', 'fast hosts: ours / by hand (ratio)', 'hosts/min ours', 'hosts/min by hand', 'CPU ours (+server)', 'CPU by hand', 'peak RSS ours', 'peak RSS by hand'],
    results.map((r) => [
      r.n, r.slow, fmtMs(r.ours.makespanMs), fmtMs(r.base.makespanMs), ratio(r.ours.makespanMs, r.base.makespanMs),
      r.slow ? `${fmtMs(r.ours.fastMakespanMs)} / ${fmtMs(r.base.fastMakespanMs)} (${ratio(r.ours.fastMakespanMs, r.base.fastMakespanMs)})` : '',
      r.ours.hostsPerMin.toFixed(1), r.base.hostsPerMin.toFixed(1),
      `${fmtMs(r.ours.cpuMs)} (+${fmtMs(r.ours.serverCpuMs ?? NaN)})`, fmtMs(r.base.cpuMs),
      fmtMiB(r.ours.peakRssBytes), fmtMiB(r.base.peakRssBytes),
    ]),
  ));
  console.log('fast hosts done (ours, s): ' + results.map((r) => `N=${r.n}/slow=${r.slow}: ${r.ours.doneAtMs.map((x) => (x / 1000).toFixed(0)).join(' ')}`).join('; '));
  console.log('fast hosts done (by hand, s): ' + results.map((r) => `N=${r.n}/slow=${r.slow}: ${r.base.doneAtMs.map((x) => (x / 1000).toFixed(0)).join(' ')}`).join('; '));
  printJsonResult('fleet', results);
});

/** Fresh hosts for one side of one variant (the first `slow` of them throttled), destroyed afterwards. */
async function side(fleet: Fleet, prefix: string, v: { n: number; slow: number }, slowPct: number, body: (hosts: FleetHost[]) => Promise<SideResult>): Promise<SideResult> {
  const hosts = await addDirectHosts(fleet, prefix, v.n);
  const undo = hosts.slice(0, v.slow).map((h) => throttleHostCpu(h, slowPct));
  try {
    return await body(hosts);
  } finally {
    for (const h of hosts) await fleet.destroyHost(h).catch(() => undefined);
    undo.forEach((u) => u());
  }
}

async function runOurs(stack: BenchStack, worker: WorkerProcess, hosts: FleetHost[], tag: string, slow: number): Promise<SideResult> {
  resetPeakRss(worker.pid);
  const sampler = new TreeRssSampler(worker.pid).start();
  const cpu0 = cpuMs(worker.pid);
  const server0 = cpuMs(stack.temporal.pid);
  const t0 = Date.now();
  const inputs = hosts.map((h, i) => onboardInput(stack.keyring, asHandHost(h, `fleet-${tag}-o${i}`)));
  const queue = stack.config.temporal.onboardingTaskQueue;
  let doneAt: number[];
  if (OURS === 'fleet') {
    // One request for the whole fleet, every host at once (as the hand-run's `-f N`).
    const r = await runFleet(stack.client, queue, `bench-${tag}`, inputs, hosts.length, t0);
    if ((r.counts.healthy ?? 0) !== hosts.length) throw new Error(`fleet settled with ${JSON.stringify(r.counts)}`);
    doneAt = r.doneAtMs;
  } else {
    doneAt = await Promise.all(
      inputs.map(async (input) => {
        await (await startOnboarding(stack.client, queue, input)).result();
        return Date.now() - t0;
      }),
    );
  }
  const makespanMs = Math.max(...doneAt, 0) || Date.now() - t0;
  const peak = sampler.stop();
  const result = {
    makespanMs,
    hostsPerMin: hosts.length / (makespanMs / 60_000),
    cpuMs: cpuMs(worker.pid) - cpu0,
    serverCpuMs: cpuMs(stack.temporal.pid) - server0,
    peakRssBytes: peak,
    fastMakespanMs: fastMakespan(doneAt, slow),
    doneAtMs: [...doneAt].sort((a, b) => a - b),
  };
  await stopHostEntities(stack.client, queue);
  await stopKeepers(stack.client, stack.config.temporal.tunnelTaskQueue);
  return result;
}

function runBaseline(stack: BenchStack, cleanup: Cleanup, hosts: FleetHost[], tag: string, slow: number): Promise<SideResult> {
  const job = {
    hosts: hosts.map((h, i) => asHandHost(h, `fleet-${tag}-b${i}`)),
    influx: { url: stack.influx.url, token: stack.influx.token, org: stack.influx.org, bucket: stack.influx.bucket, port: stack.influx.port },
    telegrafPath: stack.tools.telegraf,
  };
  const child = spawn(process.execPath, ['-r', '@swc-node/register', path.join(__dirname, 'baseline', 'fleet-by-hand.ts')], {
    cwd: repoRoot(),
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  cleanup.add('baseline script', () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const sampler = new TreeRssSampler(child.pid!, { excludeRoot: true }).start();
  let out = '';
  let err = '';
  child.stdout.on('data', (b) => (out += b));
  child.stderr.on('data', (b) => (err += b));
  child.stdin.end(JSON.stringify(job));
  return new Promise((resolve, reject) => {
    child.on('close', (code) => {
      const peak = sampler.stop();
      if (code !== 0) return reject(new Error(`fleet-by-hand exited ${code}: ${err.trim().slice(-500)}`));
      const r = JSON.parse(out.trim().split('\n').pop()!) as { makespanMs: number; steps: Record<string, number>; doneAt: Record<string, number>; cpuMs: number };
      console.log(`  by hand steps: ${Object.entries(r.steps).map(([k, v]) => `${k} ${fmtMs(v)}`).join(', ')}`);
      resolve({
        makespanMs: r.makespanMs,
        hostsPerMin: hosts.length / (r.makespanMs / 60_000),
        cpuMs: r.cpuMs,
        peakRssBytes: peak,
        doneAtMs: Object.values(r.doneAt).sort((a, b) => a - b),
        fastMakespanMs: fastMakespan(job.hosts.map((h) => r.doneAt[h.hostId] ?? NaN), slow),
      });
    });
  });
}
