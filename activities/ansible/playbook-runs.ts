import { lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../../lib/logging';

/**
 * Run directories of ansible-playbook and what to do with the ones a dead worker left behind.
 *
 * Each run gets `<tmp>/ao-ansible-XXXXXX` (0700) holding the plaintext private key for the run. A worker that is
 * SIGKILLed cannot remove it, and ansible-playbook runs in its own process group (so cancellation can kill its ssh
 * children), so it outlives the worker and keeps changing the host while Temporal retries the activity elsewhere.
 * Every run therefore records its owner in `owner.json` (worker pid + that process's start time, so a reused pid is
 * not mistaken for the owner; ansible's process group), and every process of the run carries the environment
 * variable `AO_PLAYBOOK_RUN=<dir name>`. The sweep kills only processes that carry that marker (and their group),
 * so a recycled pid or process-group id never gets a signal meant for a dead run.
 */

export const RUN_DIR_PREFIX = 'ao-ansible-';
export const RUN_MARKER_ENV = 'AO_PLAYBOOK_RUN';
const OWNER_FILE = 'owner.json';
/** A dir without a readable owner record is left alone this long (it may be one being created right now). */
const UNOWNED_GRACE_MS = 10 * 60_000;

export interface RunOwner {
  v: 1;
  workerPid: number;
  /** Start time of the worker process in clock ticks since boot (/proc/<pid>/stat field 22); null off Linux. */
  workerStartTicks: string | null;
  /**
   * The worker's pid namespace (`pid:[…]` of /proc/self/ns/pid): pids only mean something inside it. A run recorded
   * in another namespace (a container sharing this /tmp) is never judged from here.
   */
  pidNamespace: string | null;
  /** Process group of ansible-playbook (its pid); null until it is spawned. */
  pgid: number | null;
  createdAtMs: number;
}

/** Field 22 of /proc/<pid>/stat; undefined when the process does not exist, null when there is no /proc. */
export function processStartTicks(pid: number): string | null | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return existsProc() ? undefined : null;
    return undefined;
  }
  // The command name (field 2) is in parentheses and may itself hold spaces and parentheses.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return rest[19] ?? null;
}

export function pidNamespace(): string | null {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return null;
  }
}

function existsProc(): boolean {
  try {
    lstatSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
}

export async function writeRunOwner(dir: string, pgid: number | null): Promise<void> {
  const owner: RunOwner = {
    v: 1,
    workerPid: process.pid,
    workerStartTicks: processStartTicks(process.pid) ?? null,
    pidNamespace: pidNamespace(),
    pgid,
    createdAtMs: Date.now(),
  };
  // Written whole and renamed: a crash never leaves half a record.
  const tmp = path.join(dir, `.${OWNER_FILE}.tmp`);
  await writeFile(tmp, JSON.stringify(owner), { mode: 0o600 });
  await rename(tmp, path.join(dir, OWNER_FILE));
}

async function readRunOwner(dir: string): Promise<RunOwner | null> {
  try {
    const o = JSON.parse(await readFile(path.join(dir, OWNER_FILE), 'utf8')) as Partial<RunOwner>;
    if (o.v !== 1 || !Number.isInteger(o.workerPid) || (o.workerPid as number) <= 0) return null;
    return {
      v: 1,
      workerPid: o.workerPid as number,
      workerStartTicks: typeof o.workerStartTicks === 'string' ? o.workerStartTicks : null,
      pidNamespace: typeof o.pidNamespace === 'string' ? o.pidNamespace : null,
      pgid: Number.isInteger(o.pgid) && (o.pgid as number) > 1 ? (o.pgid as number) : null,
      createdAtMs: Number(o.createdAtMs) || 0,
    };
  } catch {
    return null;
  }
}

/** Whether the worker that owns a run is still this same process (not just a process with its pid). */
export function ownerAlive(owner: Pick<RunOwner, 'workerPid' | 'workerStartTicks'>): boolean {
  const ticks = processStartTicks(owner.workerPid);
  if (ticks === undefined) return false;
  if (ticks === null || owner.workerStartTicks === null) {
    // No /proc: all we can tell is whether the pid exists.
    try {
      process.kill(owner.workerPid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  return ticks === owner.workerStartTicks;
}

interface MarkedProcess {
  pid: number;
  pgid: number;
}

/** Processes whose environment carries `AO_PLAYBOOK_RUN=<run>` (only readable for our own uid, which is the point). */
function markedProcesses(run: string): MarkedProcess[] {
  const marker = Buffer.from(`${RUN_MARKER_ENV}=${run}\0`);
  const found: MarkedProcess[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return found;
  }
  for (const p of entries) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${p}/environ`);
      if (env.indexOf(marker) !== 0 && env.indexOf(Buffer.concat([Buffer.from('\0'), marker])) < 0) continue;
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      found.push({ pid: Number(p), pgid });
    } catch {
      // gone, or not ours
    }
  }
  return found;
}

function signal(target: number, sig: NodeJS.Signals): void {
  try {
    process.kill(target, sig);
  } catch {
    // already gone
  }
}

async function killRun(run: string, recordedPgid: number | null, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let killed = 0;
  for (;;) {
    const procs = markedProcesses(run);
    if (procs.length === 0) return killed;
    if (Date.now() > deadline) return killed;
    const groups = new Set(procs.map((p) => p.pgid).filter((g) => g > 1 && (recordedPgid === null || g === recordedPgid)));
    for (const g of groups) signal(-g, 'SIGKILL');
    // Anything of the run that left the group (a daemonised ssh ControlPersist master).
    for (const p of procs) signal(p.pid, 'SIGKILL');
    killed = Math.max(killed, procs.length);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface SweptRun {
  dir: string;
  workerPid: number | null;
  pgid: number | null;
  /** Processes of the run that were still alive and got SIGKILL. */
  killed: number;
}

export interface SweepOptions {
  /** Where run dirs live (default os.tmpdir(), as runPlaybook uses). */
  root?: string;
  log?: Logger;
  /** How long to wait for killed processes to be gone. */
  killTimeoutMs?: number;
  /** For tests: the clock that decides whether an unowned dir is old. */
  now?: number;
}

/**
 * Finds run dirs whose owning worker is gone, kills what is left of their ansible-playbook and removes the dir
 * (with the key in it). Only dirs that are ours (our uid, 0700, not a symlink) and recorded in our pid namespace
 * are considered; a dir whose owner record is missing or unreadable is swept once it is older than a run could
 * be. Logs one line per swept run. Never throws.
 */
export async function sweepStalePlaybookRuns(opts: SweepOptions = {}): Promise<SweptRun[]> {
  const root = opts.root ?? os.tmpdir();
  const now = opts.now ?? Date.now();
  const swept: SweptRun[] = [];
  let names: string[];
  try {
    names = readdirSync(root).filter((n) => n.startsWith(RUN_DIR_PREFIX));
  } catch {
    return swept;
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  const ownNamespace = pidNamespace();
  for (const name of names) {
    const dir = path.join(root, name);
    try {
      const st = lstatSync(dir);
      // Someone else's file in a shared /tmp never steers what we kill or delete.
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0) continue;
      const owner = await readRunOwner(dir);
      if (owner && owner.pidNamespace !== null && owner.pidNamespace !== ownNamespace) continue;
      if (owner ? ownerAlive(owner) : now - st.mtimeMs < UNOWNED_GRACE_MS) continue;
      const killed = await killRun(name, owner?.pgid ?? null, opts.killTimeoutMs ?? 5_000);
      await rm(dir, { recursive: true, force: true });
      const record: SweptRun = { dir, workerPid: owner?.workerPid ?? null, pgid: owner?.pgid ?? null, killed };
      swept.push(record);
      opts.log?.warn('removed the run dir of a dead worker', { ...record });
    } catch (e) {
      opts.log?.warn('could not sweep a playbook run dir', { dir, error: (e as Error).message });
    }
  }
  return swept;
}
