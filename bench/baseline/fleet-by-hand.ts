/**
 * The hand-run way for a fleet, as one operator's script: probe + cloudroot on every host in parallel
 * (a shell loop with `&`), ONE `ansible-playbook -f N` over all of them, then one `ssh -N -R` per host, then
 * poll InfluxDB until every host's points are in. Run by bench/fleet.ts as a child process so its CPU and
 * memory (and its children's) are its own; reads its job as JSON on stdin (passwords travel there, not in argv)
 * and prints one JSON line.
 */
import { cpuMs } from '../lib/proc';
import {
  cloudrootByHand, HandWorkspace, installByHand, probeByHand, tunnelByHand, verifyByHand,
  type HandHost, type HandInflux, type HandTunnel,
} from './by-hand';

interface Job {
  hosts: HandHost[];
  influx: HandInflux;
  telegrafPath: string;
}

async function main(): Promise<void> {
  let raw = '';
  for await (const chunk of process.stdin) raw += chunk;
  const job = JSON.parse(raw) as Job;
  const ws = new HandWorkspace('fleet');
  const tunnels: HandTunnel[] = [];
  const t0 = Date.now();
  const steps: Record<string, number> = {};
  const doneAt: Record<string, number> = {};
  try {
    let s = Date.now();
    await Promise.all(job.hosts.map(async (h) => {
      await probeByHand(ws, h);
      await cloudrootByHand(ws, h);
    }));
    steps['probe+cloudroot'] = Date.now() - s;
    s = Date.now();
    const installStart = s;
    await installByHand(ws, job.hosts, job.influx, job.telegrafPath, 'fleet');
    steps['install-agent'] = Date.now() - s;
    s = Date.now();
    tunnels.push(...(await Promise.all(job.hosts.map((h) => tunnelByHand(ws, h, job.influx.port)))));
    steps.tunnel = Date.now() - s;
    s = Date.now();
    await Promise.all(job.hosts.map(async (h) => {
      await verifyByHand(job.influx, h.hostId, installStart - 1000);
      doneAt[h.hostId] = Date.now() - t0;
    }));
    steps.verify = Date.now() - s;
    const makespanMs = Date.now() - t0;
    await Promise.all(tunnels.splice(0).map((t) => t.stop()));
    // Children only (ansible, ssh, ssh-keyscan, all reaped by now): this node script stands in for a shell.
    const childCpuMs = cpuMs(process.pid, true) - cpuMs(process.pid, false);
    process.stdout.write(JSON.stringify({ makespanMs, steps, doneAt, cpuMs: childCpuMs }) + '\n');
  } finally {
    await Promise.all(tunnels.map((t) => t.stop()));
    ws.remove();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`fleet-by-hand failed: ${e.message}\n`);
  process.exit(1);
});
