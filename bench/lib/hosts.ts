import { writeFileSync, mkdirSync, rmdirSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import type { Fleet, FleetHost } from '../../test/fleet';
import type { HandHost } from '../baseline/by-hand';

/** Fleet hosts for benchmarks: `direct` topology (the controller reaches sshd; the host cannot reach InfluxDB). */

export function asHandHost(h: FleetHost, hostId: string): HandHost {
  return { hostId, address: h.address, port: h.sshPort, bootstrapUser: h.bootstrapUser, bootstrapPassword: h.bootstrapPassword };
}

export async function addDirectHosts(fleet: Fleet, prefix: string, n: number): Promise<FleetHost[]> {
  // A few at a time: host start-up is CPU-bound (key generation) on a 2-core box.
  const out: FleetHost[] = [];
  for (let i = 0; i < n; i += 4) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(4, n - i) }, (_, j) => fleet.addHost({ name: `${prefix}${i + j}`, topology: 'direct' })),
    );
    out.push(...batch);
  }
  return out;
}

/**
 * A slow host without netem (this kernel has no sch_netem): every process of the host is put in a cgroup-v1
 * CPU group limited to `percent` of one core. sshd forks later sessions from the listener, so they inherit it.
 * Returns the undo (call after the host is destroyed).
 */
export function throttleHostCpu(h: FleetHost, percent: number): () => void {
  const dir = `/sys/fs/cgroup/cpu/ao-bench-${h.netns}`;
  if (!existsSync('/sys/fs/cgroup/cpu')) throw new Error('no cgroup-v1 cpu controller at /sys/fs/cgroup/cpu');
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/cpu.cfs_period_us`, '100000');
  writeFileSync(`${dir}/cpu.cfs_quota_us`, String(Math.round(1000 * percent)));
  const pids = execFileSync('ip', ['netns', 'pids', h.netns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean);
  for (const p of pids) {
    try {
      writeFileSync(`${dir}/cgroup.procs`, p);
    } catch {
      /* exited meanwhile */
    }
  }
  return () => {
    try {
      rmdirSync(dir);
    } catch {
      /* still busy: the kernel removes nothing by itself, but an empty group costs nothing */
    }
  };
}

/** Lifts the limit set by throttleHostCpu (the host's processes stay in the group, now without a quota). */
export function releaseHostCpu(h: FleetHost): void {
  writeFileSync(`/sys/fs/cgroup/cpu/ao-bench-${h.netns}/cpu.cfs_quota_us`, '-1');
}
