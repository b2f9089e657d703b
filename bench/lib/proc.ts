import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

/** /proc readers: CPU and memory of a process or a process tree (Linux only). */

const CLK_TCK = 100; // USER_HZ on Linux

function statFields(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses: split after the last ')'.
    return raw.slice(raw.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** CPU ms of `pid`: own user+system, plus its waited-for children's when `children`. */
export function cpuMs(pid: number, children = true): number {
  const f = statFields(pid);
  if (!f) return NaN;
  // After ')': [0]=state [1]=ppid ... utime=[11] stime=[12] cutime=[13] cstime=[14]
  const ticks = Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0);
  return (ticks * 1000) / CLK_TCK;
}

function ppid(pid: number): number | undefined {
  const f = statFields(pid);
  return f ? Number(f[1]) : undefined;
}

function statusKiB(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export const rssBytes = (pid: number) => statusKiB(pid, 'VmRSS') * 1024;
export const peakRssBytes = (pid: number) => statusKiB(pid, 'VmHWM') * 1024;

/** Proportional set size (shared pages split between sharers): the fair "memory of N ssh processes". */
export function pssBytes(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Resets VmHWM (peak RSS) of `pid` so a later read is the peak of what follows. */
export function resetPeakRss(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    /* older kernels: the peak then covers the process's whole life */
  }
}

/** `root` and all its descendants (one /proc scan). */
export function treePids(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const parent = ppid(pid);
    if (parent === undefined) continue;
    const list = children.get(parent) ?? [];
    list.push(pid);
    children.set(parent, list);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

/**
 * Samples the summed RSS of a process tree every `everyMs` and keeps the peak; CPU of exited
 * descendants is visible through the root's cutime/cstime, so only memory needs sampling.
 */
export class TreeRssSampler {
  peakBytes = 0;
  private timer?: NodeJS.Timeout;
  constructor(private readonly root: number, private readonly opts: { excludeRoot?: boolean; everyMs?: number } = {}) {}
  start(): this {
    const sample = () => {
      const pids = treePids(this.root).filter((p) => !(this.opts.excludeRoot && p === this.root));
      const sum = pids.reduce((a, p) => a + rssBytes(p), 0);
      if (sum > this.peakBytes) this.peakBytes = sum;
    };
    sample();
    this.timer = setInterval(sample, this.opts.everyMs ?? 250);
    return this;
  }
  stop(): number {
    if (this.timer) clearInterval(this.timer);
    return this.peakBytes;
  }
}
