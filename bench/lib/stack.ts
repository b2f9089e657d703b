import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { freePort, stopChild, waitFor } from '../../apps/devstack/processes';
import { startInfluxd, startTemporalDevServer, type InfluxServer, type TemporalDevServer } from '../../apps/devstack/services';
import { ensureToolchain, repoRoot, type Toolchain } from '../../apps/devstack/toolchain';
import { Keyring } from '../../lib/keyring';
import { dataConverterFor } from '../../lib/temporal';
import { apiKeyEnv, type WorkerConfig } from '../../lib/config';

/**
 * What every benchmark starts for itself: a headless Temporal dev server and InfluxDB 1.8 on free loopback
 * ports, a fresh key ring, and (on request) the real worker and API as child processes, so their CPU and
 * memory are their own. Everything registered with `cleanup` is undone in reverse order, also on failure
 * and on SIGINT/SIGTERM.
 */

type Undo = () => Promise<unknown> | unknown;

export class Cleanup {
  private readonly undo: { what: string; fn: Undo }[] = [];
  add(what: string, fn: Undo): void {
    this.undo.push({ what, fn });
  }
  async run(): Promise<void> {
    while (this.undo.length) {
      const { what, fn } = this.undo.pop()!;
      try {
        await fn();
      } catch (e) {
        console.error(`cleanup: ${what}: ${(e as Error).message}`);
      }
    }
  }
}

/** Runs a benchmark body with a cleanup stack; exits non-zero on failure, always cleaning up first. */
export function runBench(name: string, body: (cleanup: Cleanup) => Promise<void>): void {
  const cleanup = new Cleanup();
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await cleanup.run();
    process.exit(code);
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      console.error(`${name}: ${sig}, cleaning up`);
      void stop(130);
    });
  }
  body(cleanup).then(
    () => stop(0),
    (e: Error) => {
      console.error(`${name} failed: ${e.stack ?? e.message}`);
      void stop(1);
    },
  );
}

export interface BenchStack {
  dir: string;
  tools: Toolchain;
  temporal: TemporalDevServer;
  influx: InfluxServer & { token: string; org: string; bucket: string; port: number };
  keyring: Keyring;
  client: Client;
  config: WorkerConfig;
  /** Environment for the worker child processes (holds the master key: never printed); the API's drops it. */
  childEnv: NodeJS.ProcessEnv;
}

export async function startStack(cleanup: Cleanup, label: string): Promise<BenchStack> {
  const tools = ensureToolchain();
  const dir = mkdtempSync(path.join(os.tmpdir(), `ao-bench-${label}-`));
  cleanup.add('bench dir', () => rmSync(dir, { recursive: true, force: true }));
  const temporal = await startTemporalDevServer({ binary: tools.temporal, dataDir: dir, port: await freePort() });
  cleanup.add('temporal', () => temporal.stop());
  const httpPort = await freePort();
  const influxd = await startInfluxd({ binary: tools.influxd, dataDir: path.join(dir, 'influx'), httpPort, rpcPort: await freePort() });
  cleanup.add('influxd', () => influxd.stop());
  const influx = { ...influxd, token: 'telegraf:telegraf', org: 'agent-onboarding', bucket: `${influxd.database}/autogen`, port: httpPort };
  const keyring = Keyring.parse(`bench:${randomBytes(32).toString('base64')}`);
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection, dataConverter: dataConverterFor(keyring) });
  cleanup.add('temporal client', () => connection.close());
  const suffix = randomBytes(3).toString('hex');
  const config: WorkerConfig = {
    temporal: { address: temporal.address, namespace: 'default', onboardingTaskQueue: `bench-onb-${suffix}`, tunnelTaskQueue: `bench-tun-${suffix}`, tls: false },
    influx: { url: influx.url, token: influx.token, org: influx.org, bucket: influx.bucket },
    keyring,
    api: { host: '127.0.0.1', port: 0, tokens: new Map(), uiOrigin: 'http://127.0.0.1:8233' },
    telegrafArtifact: tools.telegraf,
  };
  const childEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LANG: 'C.UTF-8',
    TEMPORAL_ADDRESS: temporal.address,
    AO_MASTER_KEYS: keyring.toSpec(),
    AO_ONBOARDING_TASK_QUEUE: config.temporal.onboardingTaskQueue,
    AO_TUNNEL_TASK_QUEUE: config.temporal.tunnelTaskQueue,
    INFLUX_URL: influx.url,
    INFLUX_TOKEN: influx.token,
    INFLUX_ORG: influx.org,
    INFLUX_BUCKET: influx.bucket,
    TELEGRAF_PATH: tools.telegraf,
    // Batched installs: the bench's own settings reach its worker (AO_INSTALL_BATCH_MAX=1 measures without).
    ...(process.env.AO_INSTALL_BATCH_MAX ? { AO_INSTALL_BATCH_MAX: process.env.AO_INSTALL_BATCH_MAX } : {}),
    ...(process.env.AO_INSTALL_BATCH_WINDOW_MS ? { AO_INSTALL_BATCH_WINDOW_MS: process.env.AO_INSTALL_BATCH_WINDOW_MS } : {}),
    ...(process.env.AO_ONBOARDING_ACTIVITY_SLOTS ? { AO_ONBOARDING_ACTIVITY_SLOTS: process.env.AO_ONBOARDING_ACTIVITY_SLOTS } : {}),
    AO_LOG_LEVEL: 'warn',
    ...(process.env.AO_CACHE_DIR ? { AO_CACHE_DIR: process.env.AO_CACHE_DIR } : {}),
  };
  return { dir, tools, temporal, influx, keyring, client, config, childEnv };
}

export interface ChildApp {
  pid: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Runs a TypeScript entry point of the repo (`apps/worker/main.ts`, ...) as a child node process. */
export function spawnTs(name: string, entry: string, env: NodeJS.ProcessEnv, logFile: string): ChildApp {
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(process.execPath, ['-r', '@swc-node/register', path.join(repoRoot(), entry)], {
    cwd: repoRoot(),
    env: { ...env, SWC_NODE_PROJECT: path.join(repoRoot(), 'tsconfig.json') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  child.on('error', () => undefined);
  if (!child.pid) throw new Error(`${name}: could not start`);
  return {
    pid: child.pid,
    child,
    stop: () => stopChild(child, 15_000),
  };
}

export interface WorkerProcess extends ChildApp {
  /** The identity it polls with (the server shows it on pollers and pending activities). */
  identity: string;
  /** Full GC in the worker, then its process.memoryUsage() (bytes). */
  memoryAfterGc(): Promise<NodeJS.MemoryUsage>;
  /** SIGKILL to the worker's whole process group (`ownGroup` workers only); resolves once it has exited. */
  killGroup(): Promise<void>;
}

export interface WorkerProcessOptions {
  /** Poller identity; default the SDK's (`<pid>@<hostname>`). */
  identity?: string;
  /** A workflow bundle written once by the bench (test/support/worker-process.ts writeBundleFiles): no bundling per child. */
  bundle?: { codePath: string; mapPath: string };
  /** Its own process group (detached), so a crash can be simulated with one SIGKILL to the group. */
  ownGroup?: boolean;
}

/**
 * The real worker (createWorkers, both task queues) in a child process (bench/lib/worker-child.ts, the same
 * wiring as apps/worker/main.ts plus a GC-then-measure hook); ready once it polls the tunnel queue (with its
 * identity: a killed worker's pollers stay listed for a while).
 */
export async function startWorkerProcess(cleanup: Cleanup, stack: BenchStack, name = 'worker', opts: WorkerProcessOptions = {}): Promise<WorkerProcess> {
  const log = createWriteStream(path.join(stack.dir, `${name}.log`), { flags: 'a' });
  const identity = opts.identity;
  const child = fork(path.join(__dirname, 'worker-child.ts'), [], {
    cwd: repoRoot(),
    env: {
      ...stack.childEnv,
      SWC_NODE_PROJECT: path.join(repoRoot(), 'tsconfig.json'),
      ...(identity ? { AO_WORKER_IDENTITY: identity } : {}),
      ...(opts.bundle ? { AO_WORKFLOW_BUNDLE_CODE: opts.bundle.codePath, AO_WORKFLOW_BUNDLE_MAP: opts.bundle.mapPath } : {}),
    },
    execArgv: ['-r', '@swc-node/register', '--expose-gc'],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    detached: !!opts.ownGroup,
  });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  child.on('error', () => undefined);
  if (!child.pid) throw new Error(`${name}: could not start`);
  const pid = child.pid;
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const w: WorkerProcess = {
    pid,
    child,
    identity: identity ?? `${pid}@${os.hostname()}`,
    stop: () => stopChild(child, 15_000),
    memoryAfterGc: () =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${name}: no memory answer`)), 30_000);
        child.once('message', (m: { mem: NodeJS.MemoryUsage }) => {
          clearTimeout(t);
          resolve(m.mem);
        });
        child.send('mem');
      }),
    killGroup: async () => {
      if (!opts.ownGroup) throw new Error(`${name}: not in its own process group`);
      try {
        process.kill(-pid, 'SIGKILL');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
      await exited;
    },
  };
  cleanup.add(name, () => w.stop());
  await waitFor(
    `${name} polling`,
    async () => {
      if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode}); see ${stack.dir}/${name}.log`);
      const r = await stack.client.workflowService.describeTaskQueue({
        namespace: 'default',
        taskQueue: { name: stack.config.temporal.tunnelTaskQueue },
        taskQueueType: 1, // workflow
      });
      return (r.pollers ?? []).some((p) => !identity || p.identity === identity);
    },
    120_000,
  );
  return w;
}

/** The real API process (apps/api/main.ts) with the given rate limit; resolves with its base URL. */
export async function startApiProcess(
  cleanup: Cleanup,
  stack: BenchStack,
  opts: { token: string; rateLimit: string },
): Promise<{ app: ChildApp; base: string }> {
  const port = await freePort();
  // The API gets its derived keys, never the workers' master keys (it refuses to start with them).
  const { AO_MASTER_KEYS: _workerOnly, ...common } = stack.childEnv;
  const app = spawnTs('api', 'apps/api/main.ts', {
    ...common,
    ...apiKeyEnv(stack.keyring),
    AO_API_HOST: '127.0.0.1',
    AO_API_PORT: String(port),
    AO_API_TOKENS: `${opts.token}:operator`,
    AO_API_RATE_LIMIT: opts.rateLimit,
  }, path.join(stack.dir, 'api.log'));
  cleanup.add('api', () => app.stop());
  const base = `http://127.0.0.1:${port}`;
  await waitFor('api /healthz', async () => (await fetch(`${base}/healthz`)).ok, 120_000);
  return { app, base };
}
