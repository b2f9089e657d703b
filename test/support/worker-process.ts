import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';

/**
 * Real worker processes (test/support/worker-child.ts run by node with @swc-node/register), for tests that
 * kill a worker the way a crash would. Configuration goes through the environment like the real worker's;
 * the key ring is in the environment, never in argv.
 */

const CHILD_ENTRY = path.join(__dirname, 'worker-child.ts');
const REPO_ROOT = path.resolve(__dirname, '..', '..');
const READY_MESSAGE = 'worker ready'; // worker-child.ts READY_MESSAGE (not imported: it would run the child's main)
const TAIL_LINES = 200;

export class WorkerProcessError extends Error {
  override name = 'WorkerProcessError';
}

export interface WorkerProcessOptions {
  identity: string;
  /** Config variables of lib/config.ts (TEMPORAL_ADDRESS, AO_MASTER_KEYS, INFLUX_URL, AO_TUNNEL_TASK_QUEUE, ...). */
  env: Record<string, string>;
  /** From writeBundleFiles(): the children skip bundling. */
  bundle?: BundleFiles;
  readyTimeoutMs?: number;
}

export interface WorkerProcess {
  readonly identity: string;
  readonly pid: number;
  /** Resolves with how the process ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Whether the OS still knows the pid (signal 0), i.e. it is neither gone nor an unreaped zombie of ours. */
  isAlive(): boolean;
  /** Sends the signal and waits until the process has exited (SIGKILL after `graceMs` if it has not). */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  /** The last lines the process wrote (stdout and stderr), for failure messages. */
  tail(): string;
}

export interface BundleFiles {
  codePath: string;
  mapPath: string;
  remove(): void;
}

/** Writes a workflow bundle where worker children can load it. */
export function writeBundleFiles(bundle: WorkflowBundleWithSourceMap): BundleFiles {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ao-wf-bundle-'));
  const codePath = path.join(dir, 'workflows.js');
  const mapPath = path.join(dir, 'workflows.js.map');
  writeFileSync(codePath, bundle.code);
  writeFileSync(mapPath, bundle.sourceMap);
  return { codePath, mapPath, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

const live = new Set<ChildProcess>();
let exitHook = false;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Starts a worker child and resolves once it polls its task queues. */
export async function startWorkerProcess(opts: WorkerProcessOptions): Promise<WorkerProcess> {
  if (!exitHook) {
    exitHook = true;
    // Last resort if the test process exits without stopping them (the child also exits when re-parented).
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  const child = spawn(process.execPath, ['-r', '@swc-node/register', CHILD_ENTRY], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      HOME: process.env.HOME ?? os.homedir(),
      ...(process.env.AO_CACHE_DIR ? { AO_CACHE_DIR: process.env.AO_CACHE_DIR } : {}),
      ...(process.env.XDG_CACHE_HOME ? { XDG_CACHE_HOME: process.env.XDG_CACHE_HOME } : {}),
      ...opts.env,
      AO_WORKER_IDENTITY: opts.identity,
      ...(opts.bundle ? { AO_WORKFLOW_BUNDLE_CODE: opts.bundle.codePath, AO_WORKFLOW_BUNDLE_MAP: opts.bundle.mapPath } : {}),
    },
  });
  live.add(child);
  const lines: string[] = [];
  let partial = '';
  let onReady: (() => void) | undefined;
  const collect = (chunk: Buffer) => {
    const text = partial + chunk.toString('utf8');
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      if (lines.length > TAIL_LINES) lines.shift();
      if (line.includes(`"msg":"${READY_MESSAGE}"`)) onReady?.();
    }
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  const spawnError = new Promise<never>((_, reject) => child.once('error', (e) => reject(new WorkerProcessError(`cannot start worker: ${e.message}`))));
  const tail = () => [...lines, partial].filter(Boolean).slice(-40).join('\n');

  const wp: WorkerProcess = {
    identity: opts.identity,
    pid: child.pid ?? -1,
    exited,
    isAlive: () => child.pid !== undefined && pidAlive(child.pid),
    async stop(signal = 'SIGTERM', graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
    tail,
  };

  const timeoutMs = opts.readyTimeoutMs ?? 120_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    const exitedEarly = exited.then(({ code, signal }) => {
      throw new WorkerProcessError(`worker ${opts.identity} exited before it was ready (code ${code}, signal ${signal}):\n${tail()}`);
    });
    // These settle after the race too (a later kill, a late spawn error): not unhandled rejections.
    exitedEarly.catch(() => undefined);
    spawnError.catch(() => undefined);
    await Promise.race([
      new Promise<void>((resolve) => (onReady = resolve)),
      spawnError,
      exitedEarly,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new WorkerProcessError(`worker ${opts.identity} not ready within ${timeoutMs} ms:\n${tail()}`)), timeoutMs);
      }),
    ]);
  } catch (e) {
    await wp.stop('SIGKILL');
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return wp;
}
