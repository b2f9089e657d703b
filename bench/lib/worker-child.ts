/**
 * The real worker (createWorkers from apps/worker/workers.ts, configured from the environment exactly like
 * apps/worker/main.ts), run as a child process by the benchmarks so its CPU and memory are their own. Additions:
 * on an IPC message "mem" it runs a full GC (node --expose-gc) and answers process.memoryUsage(), so memory per
 * held tunnel is not hidden by garbage left over from bundling the workflows at start-up; AO_WORKER_IDENTITY names
 * the worker (the server shows it on polls and pending activities); AO_WORKFLOW_BUNDLE_CODE / _MAP load a bundle
 * the bench prepared once (bundling costs seconds of CPU per process); and it exits when the bench is gone
 * (re-parented), which matters for a worker in its own process group, out of reach of the terminal's signals.
 */
import { readFileSync } from 'node:fs';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { loadWorkerConfig } from '../../lib/config';
import { createLogger } from '../../lib/logging';
import { createWorkers } from '../../apps/worker/workers';

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const identity = process.env.AO_WORKER_IDENTITY || undefined;
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: ['SIGINT', 'SIGTERM'] });
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(2);
  }, 500).unref();
  const codePath = process.env.AO_WORKFLOW_BUNDLE_CODE;
  const bundle = codePath
    ? { code: readFileSync(codePath, 'utf8'), sourceMap: readFileSync(process.env.AO_WORKFLOW_BUNDLE_MAP ?? `${codePath}.map`, 'utf8') }
    : undefined;
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const set = await createWorkers({ config, connection, log: createLogger('worker', identity ? { identity } : {}), ...(bundle ? { bundle } : {}), ...(identity ? { identity } : {}) });
  process.on('message', (m) => {
    if (m !== 'mem') return;
    const gc = (globalThis as { gc?: (opts?: unknown) => void }).gc;
    gc?.();
    gc?.();
    process.send?.({ mem: process.memoryUsage(), gc: !!gc });
  });
  process.on('disconnect', () => undefined);
  try {
    await set.run();
  } finally {
    await connection.close();
  }
}

main().catch((err) => {
  console.error(`bench worker failed: ${(err as Error).message}`);
  process.exit(1);
});
