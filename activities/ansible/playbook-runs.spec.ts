import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  RUN_DIR_PREFIX, RUN_MARKER_ENV, ownerAlive, pidNamespace, processStartTicks, sweepStalePlaybookRuns, writeRunOwner, type RunOwner,
} from './playbook-runs';

// Real processes and real process groups: a "run" is a detached sh with children, like ansible-playbook and its ssh.
const linux = existsSync('/proc/self/stat');
const describeLinux = linux ? describe : describe.skip;

/** Alive and not a zombie. */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Pids of the group `pgid` that are alive. */
function groupMembers(pgid: number): number[] {
  const out = spawnSync('ps', ['-eo', 'pid=,pgid=,stat='], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => Number(f[1]) === pgid && !f[2]?.startsWith('Z'))
    .map((f) => Number(f[0]));
}

/** A pid that belonged to a process that has exited. */
function deadPid(): number {
  const r = spawnSync('sh', ['-c', 'echo $$']);
  const pid = Number(r.stdout.toString().trim());
  expect(processStartTicks(pid)).toBeUndefined();
  return pid;
}

describeLinux('sweepStalePlaybookRuns', () => {
  let root: string;
  const children: ChildProcess[] = [];

  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'ao-sweep-test-'));
  });
  afterEach(() => {
    for (const c of children.splice(0)) {
      try {
        process.kill(-c.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(root, { recursive: true, force: true });
  });

  function runDir(name: string): string {
    const dir = path.join(root, `${RUN_DIR_PREFIX}${name}`);
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(path.join(dir, 'id'), 'PRIVATE KEY MATERIAL\n', { mode: 0o600 });
    return dir;
  }

  function owner(dir: string, o: Partial<RunOwner>): void {
    const record: RunOwner = {
      v: 1,
      workerPid: o.workerPid ?? deadPid(),
      workerStartTicks: o.workerStartTicks === undefined ? '12345' : o.workerStartTicks,
      pidNamespace: o.pidNamespace === undefined ? pidNamespace() : o.pidNamespace,
      pgid: o.pgid ?? null,
      createdAtMs: Date.now(),
    };
    writeFileSync(path.join(dir, 'owner.json'), JSON.stringify(record), { mode: 0o600 });
  }

  /** A detached process group (leader sh + two sleeps) carrying the run marker, as ansible-playbook and its ssh do. */
  async function fakeAnsible(dir: string, marked = true): Promise<{ pgid: number; pids: number[] }> {
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...(marked ? { [RUN_MARKER_ENV]: path.basename(dir) } : {}) };
    const child = spawn('sh', ['-c', 'sleep 300 & sleep 300 & echo ready; wait'], { detached: true, env, stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(child);
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    const pgid = child.pid!;
    const pids = groupMembers(pgid);
    expect(pids.length).toBe(3);
    return { pgid, pids };
  }

  it('kills the process group of a run whose worker is dead and removes its dir', async () => {
    const dir = runDir('dead1');
    const run = await fakeAnsible(dir);
    // A daemonised ssh master of the same run: its own group, still carrying the marker.
    const daemon = spawn('sleep', ['300'], { detached: true, env: { PATH: process.env.PATH, [RUN_MARKER_ENV]: path.basename(dir) }, stdio: 'ignore' });
    children.push(daemon);
    owner(dir, { pgid: run.pgid });
    const logged: Array<Record<string, unknown> | undefined> = [];
    const log = { debug() {}, info() {}, error() {}, warn: (_m: string, f?: Record<string, unknown>) => logged.push(f), child: () => log };

    const swept = await sweepStalePlaybookRuns({ root, log });

    expect(swept).toEqual([expect.objectContaining({ dir, pgid: run.pgid, killed: 4 })]);
    expect(logged).toEqual([expect.objectContaining({ dir, pgid: run.pgid })]);
    expect(existsSync(dir)).toBe(false);
    for (const pid of [...run.pids, daemon.pid!]) expect(running(pid)).toBe(false);
  });

  it('also finds the run when the worker died before it recorded the process group', async () => {
    const dir = runDir('nopgid');
    const run = await fakeAnsible(dir);
    owner(dir, { pgid: null });
    expect(await sweepStalePlaybookRuns({ root })).toHaveLength(1);
    expect(existsSync(dir)).toBe(false);
    for (const pid of run.pids) expect(running(pid)).toBe(false);
  });

  it('treats a reused pid (same pid, other start time) as a dead owner', async () => {
    const dir = runDir('reused');
    const run = await fakeAnsible(dir);
    owner(dir, { workerPid: process.pid, workerStartTicks: '1', pgid: run.pgid });
    expect(await sweepStalePlaybookRuns({ root })).toHaveLength(1);
    for (const pid of run.pids) expect(running(pid)).toBe(false);
  });

  it('leaves the runs of a live worker alone', async () => {
    const dir = runDir('alive');
    const run = await fakeAnsible(dir);
    await writeRunOwner(dir, run.pgid);
    const record = JSON.parse(readFileSync(path.join(dir, 'owner.json'), 'utf8')) as RunOwner;
    expect(record).toMatchObject({ v: 1, workerPid: process.pid, workerStartTicks: processStartTicks(process.pid), pgid: run.pgid });
    expect(ownerAlive(record)).toBe(true);

    expect(await sweepStalePlaybookRuns({ root })).toEqual([]);
    expect(existsSync(path.join(dir, 'id'))).toBe(true);
    for (const pid of run.pids) expect(running(pid)).toBe(true);
  });

  it('never signals a process that does not carry the run marker, even in the recorded group', async () => {
    const dir = runDir('recycled');
    // The recorded group id now belongs to something else (pgid reuse): no marker, so no signal.
    const stranger = await fakeAnsible(dir, false);
    owner(dir, { pgid: stranger.pgid });
    expect(await sweepStalePlaybookRuns({ root })).toEqual([expect.objectContaining({ killed: 0 })]);
    expect(existsSync(dir)).toBe(false);
    for (const pid of stranger.pids) expect(running(pid)).toBe(true);
  });

  it('ignores dirs that are not ours to judge: open modes, plain files, other pid namespaces', async () => {
    const open = runDir('open');
    owner(open, {});
    chmodSync(open, 0o755);
    writeFileSync(path.join(root, `${RUN_DIR_PREFIX}file`), 'x');
    const foreign = runDir('foreign');
    owner(foreign, { pidNamespace: 'pid:[1]' });
    expect(await sweepStalePlaybookRuns({ root })).toEqual([]);
    expect(existsSync(open) && existsSync(foreign)).toBe(true);
  });

  it('removes a dir without an owner record only once it is older than any run', async () => {
    const dir = runDir('unowned');
    expect(await sweepStalePlaybookRuns({ root })).toEqual([]);
    const old = new Date(Date.now() - 11 * 60_000);
    utimesSync(dir, old, old);
    expect(await sweepStalePlaybookRuns({ root })).toEqual([expect.objectContaining({ dir, workerPid: null })]);
    expect(existsSync(dir)).toBe(false);
  });

  it('does nothing (and does not throw) when the root does not exist', async () => {
    expect(await sweepStalePlaybookRuns({ root: path.join(root, 'missing') })).toEqual([]);
  });
});
