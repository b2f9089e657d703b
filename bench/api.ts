/**
 * API latency under onboarding load: `GET /v1/hosts/:id` at a fixed open-loop rate (default 50 req/s) while
 * 10 onboardings run (real worker and real API, each its own process), vs the same load once they are done
 * (the idle API, same hosts: the baseline). Target: p99 <= 100 ms under load.
 *
 *   node -r @swc-node/register bench/api.ts
 *   HOSTS=10 RATE=50 LOAD_S=90 IDLE_S=30 node -r @swc-node/register bench/api.ts
 */
import { createFleet } from '../test/fleet';
import { workflowIds } from '../workflows/contracts';
import { onboardingStatusQuery } from '../workflows/messages';
import { addDirectHosts } from './lib/hosts';
import { openLoop, type LoadResult } from './lib/load';
import { stopKeepers } from './lib/ours';
import { cpuMs } from './lib/proc';
import { runBench, startApiProcess, startStack, startWorkerProcess } from './lib/stack';
import { envInt, fmtMs, percentile, printJsonResult, ratio, table } from './lib/stats';

const TOKEN = `bench-operator-${Math.random().toString(36).slice(2)}-token`;

runBench('api', async (cleanup) => {
  const nHosts = envInt('HOSTS', 10);
  const rate = envInt('RATE', 50);
  const loadS = envInt('LOAD_S', 90);
  const idleS = envInt('IDLE_S', 30);
  const stack = await startStack(cleanup, 'api');
  const worker = await startWorkerProcess(cleanup, stack);
  // The default limit (1200/min per client) is for people; this client is a load generator.
  const { app, base } = await startApiProcess(cleanup, stack, { token: TOKEN, rateLimit: '1000000/60s' });
  const fleet = await createFleet();
  cleanup.add('fleet', () => fleet.destroy());
  cleanup.add('tunnel keepers', () => stopKeepers(stack.client, stack.config.temporal.tunnelTaskQueue));
  const hosts = await addDirectHosts(fleet, 'a', nHosts);
  const ids = hosts.map((_, i) => `api-${i}`);
  const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

  const get = (i: number) => fetch(`${base}/v1/hosts/${ids[i % ids.length]}`, { headers });
  const cpu0 = { api: cpuMs(app.pid), worker: cpuMs(worker.pid) };

  // ---- under load: 10 onboardings in flight ----
  const t0 = Date.now();
  for (const [i, h] of hosts.entries()) {
    const res = await fetch(`${base}/v1/hosts`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ hostId: ids[i], address: h.address, port: h.sshPort, username: h.bootstrapUser, password: h.bootstrapPassword, dataPath: 'tunnel' }),
    });
    if (res.status !== 202) throw new Error(`POST /v1/hosts: ${res.status} ${await res.text()}`);
  }
  let done = 0;
  const finished = Promise.all(
    ids.map((id) =>
      stack.client.workflow.getHandle(workflowIds.onboarding(id)).result().then(() => {
        done++;
      }),
    ),
  );
  finished.catch(() => undefined);
  // Where the time goes: the two Temporal calls a GET makes, timed from this process at 2/s.
  const probe = { describe: [] as number[], query: [] as number[] };
  const prober = setInterval(() => {
    const h = stack.client.workflow.getHandle(workflowIds.onboarding(ids[0]));
    const t = performance.now();
    h.describe().then(() => {
      probe.describe.push(performance.now() - t);
      const q = performance.now();
      return h.query(onboardingStatusQuery).then(() => probe.query.push(performance.now() - q));
    }).catch(() => undefined);
  }, 500);
  const loaded = await openLoop({ ratePerS: rate, maxCount: rate * loadS, maxDurationMs: loadS * 1000, stop: () => done === ids.length, request: get });
  const loadedFor = Date.now() - t0;
  clearInterval(prober);
  console.log(`  under load: ${loaded.sent} requests in ${fmtMs(loadedFor)}, ${done}/${ids.length} onboardings finished meanwhile`);
  await finished;
  console.log(`  all ${ids.length} onboardings healthy after ${fmtMs(Date.now() - t0)}`);
  const cpu1 = { api: cpuMs(app.pid), worker: cpuMs(worker.pid) };

  // ---- baseline: the same load on the idle system ----
  const idle = await openLoop({ ratePerS: rate, maxCount: rate * idleS, maxDurationMs: idleS * 1000, request: get });
  const cpu2 = { api: cpuMs(app.pid), worker: cpuMs(worker.pid) };

  const row = (name: string, r: LoadResult) => [
    name, r.sent, r.errors, fmtMs(percentile(r.latenciesMs, 50)), fmtMs(percentile(r.latenciesMs, 90)),
    fmtMs(percentile(r.latenciesMs, 99)), fmtMs(Math.max(...r.latenciesMs)), fmtMs(percentile(r.serviceMs, 99)), fmtMs(r.maxSendLagMs),
  ];
  console.log(`\nGET /v1/hosts/:id at ${rate} req/s open loop (target: p99 <= 100 ms while ${nHosts} onboardings run)`);
  console.log(table(['phase', 'requests', 'errors', 'p50', 'p90', 'p99', 'max', 'p99 from send', 'max send lag'], [
    row(`during ${nHosts} onboardings`, loaded),
    row('idle (baseline)', idle),
  ]));
  console.log(`ratio loaded/idle: p50 ${ratio(percentile(loaded.latenciesMs, 50), percentile(idle.latenciesMs, 50))}, ` +
    `p99 ${ratio(percentile(loaded.latenciesMs, 99), percentile(idle.latenciesMs, 99))}`);
  console.log(`CPU during load: api ${fmtMs(cpu1.api - cpu0.api)}, worker+children ${fmtMs(cpu1.worker - cpu0.worker)} over ${fmtMs(loadedFor)}; ` +
    `idle phase: api ${fmtMs(cpu2.api - cpu1.api)}`);
  const pct = (r: LoadResult) => ({
    sent: r.sent, errors: r.errors, statuses: r.statuses, p50: percentile(r.latenciesMs, 50), p90: percentile(r.latenciesMs, 90),
    p99: percentile(r.latenciesMs, 99), max: Math.max(...r.latenciesMs), serviceP99: percentile(r.serviceMs, 99), maxSendLagMs: r.maxSendLagMs,
  });
  console.log(`meanwhile, straight from a Temporal client: describe p50 ${fmtMs(percentile(probe.describe, 50))} p99 ${fmtMs(percentile(probe.describe, 99))}; ` +
    `status query p50 ${fmtMs(percentile(probe.query, 50))} p99 ${fmtMs(percentile(probe.query, 99))} (${probe.query.length} samples)`);
  console.log(`statuses: during ${JSON.stringify(loaded.statuses)}; idle ${JSON.stringify(idle.statuses)}`);
  printJsonResult('api', { rate, hosts: nHosts, loaded: pct(loaded), idle: pct(idle), probe: { describeP50: percentile(probe.describe, 50), describeP99: percentile(probe.describe, 99), queryP50: percentile(probe.query, 50), queryP99: percentile(probe.query, 99) } });
});
