/**
 * Per-host onboarding wall time: ours (the onboardHost workflow on the real worker) vs the hand-run baseline
 * (OpenSSH + ansible-playbook, bench/baseline/by-hand.ts), each on fresh fleet hosts, alternating which goes
 * first. Steps: probe, cloudroot, install-agent, tunnel, verify (ours from the workflow's step timeline).
 *
 *   node -r @swc-node/register bench/onboard.ts          # RUNS=3
 *   RUNS=10 node -r @swc-node/register bench/onboard.ts
 */
import { createFleet } from '../test/fleet';
import { workflowIds, type OnboardingStatus } from '../workflows/contracts';
import { HandWorkspace, onboardByHand, type HandStep } from './baseline/by-hand';
import { addDirectHosts, asHandHost } from './lib/hosts';
import { onboardInput, startOnboarding, stepDurations, stopKeepers } from './lib/ours';
import { runBench, startStack, startWorkerProcess } from './lib/stack';
import { envInt, fmtMs, percentile, printJsonResult, ratio, table } from './lib/stats';

const STEPS: (HandStep | 'total')[] = ['probe', 'cloudroot', 'install-agent', 'tunnel', 'verify', 'total'];

runBench('onboard', async (cleanup) => {
  const runs = envInt('RUNS', 3);
  const stack = await startStack(cleanup, 'onboard');
  await startWorkerProcess(cleanup, stack);
  const fleet = await createFleet();
  cleanup.add('fleet', () => fleet.destroy());
  cleanup.add('tunnel keepers', () => stopKeepers(stack.client, stack.config.temporal.tunnelTaskQueue));
  const ws = new HandWorkspace('onboard');
  cleanup.add('by-hand workspace', () => ws.remove());

  const ours: Record<string, number>[] = [];
  const base: Record<string, number>[] = [];
  console.log(`onboard: ${runs} run(s), each one fresh host per side; order alternates`);

  for (let i = 0; i < runs; i++) {
    const [ho, hb] = await addDirectHosts(fleet, `r${i}x`, 2);
    const runOurs = async () => {
      const h = asHandHost(ho, `bench-ours-${i}`);
      const t0 = Date.now();
      const handle = await startOnboarding(stack.client, stack.config.temporal.onboardingTaskQueue, onboardInput(stack.keyring, h));
      const status = (await handle.result()) as OnboardingStatus;
      const total = Date.now() - t0;
      if (status.phase !== 'healthy') throw new Error(`ours: ${h.hostId} ended ${status.phase}`);
      ours.push({ ...stepDurations(status), total } as Record<string, number>);
      await stack.client.workflow.getHandle(workflowIds.tunnel(h.hostId)).terminate('run over').catch(() => undefined);
      await fleet.destroyHost(ho);
    };
    const runBase = async () => {
      const h = asHandHost(hb, `bench-hand-${i}`);
      const r = await onboardByHand(ws, h, stack.influx, stack.tools.telegraf);
      base.push({ ...r.steps, total: r.totalMs } as Record<string, number>);
      await r.tunnel.stop();
      await fleet.destroyHost(hb);
    };
    if (i % 2 === 0) {
      await runOurs();
      await runBase();
    } else {
      await runBase();
      await runOurs();
    }
    console.log(`  run ${i + 1}/${runs}: ours ${fmtMs(ours[i].total)}  by hand ${fmtMs(base[i].total)}`);
  }

  const rows = STEPS.map((s) => {
    const o = ours.map((r) => r[s]).filter(Number.isFinite);
    const b = base.map((r) => r[s]).filter(Number.isFinite);
    return [s, fmtMs(percentile(o, 50)), fmtMs(percentile(o, 95)), fmtMs(percentile(b, 50)), fmtMs(percentile(b, 95)), ratio(percentile(o, 50), percentile(b, 50))];
  });
  console.log(`\nper-host onboarding wall time, ${runs} run(s) (target: total ratio <= 1.05 at p50)`);
  console.log(table(['step', 'ours p50', 'ours p95', 'by hand p50', 'by hand p95', 'ratio p50'], rows));
  printJsonResult('onboard', { runs, ours, base });
});
