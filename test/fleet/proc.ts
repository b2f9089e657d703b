import * as fs from 'node:fs';

/** Start time (clock ticks since boot) of a process; with the pid it identifies the process despite pid reuse. */
export function procStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parens: fields after the last ')' are positional.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19]; // field 22 overall
  } catch {
    return undefined;
  }
}

export function procParent(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

export interface ProcessIdentity {
  pid: number;
  start: string;
}

export function selfIdentity(): ProcessIdentity {
  return { pid: process.pid, start: procStartTime(process.pid) ?? '' };
}

/** Same process still there and not a zombie (a zombie has released its namespaces and mounts). */
export function isAlive(id: ProcessIdentity): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${id.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] === id.start && fields[0] !== 'Z' && fields[0] !== 'X';
  } catch {
    return false;
  }
}

export function listPids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

/** `net:[4026532...]`-style identity of a process's namespace, or undefined when it is gone. */
export function nsOf(pid: number, kind: 'net' | 'pid' | 'mnt'): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined;
  }
}

export function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

export function comm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Polls until `pred` holds or the deadline passes; returns whether it held. */
export async function waitFor(pred: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
