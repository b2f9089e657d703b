/**
 * The real worker (createWorkers from apps/worker/workers.ts, configured from the environment exactly like
 * apps/worker/main.ts), run as a child process by the benchmarks so its CPU and memory are its own. The only
 * addition: on an IPC message "mem" it runs a full GC (node --expose-gc) and answers process.memoryUsage(),
 * so memory per held tunnel is not hidden by garbage left over from bundling the workflows at start-up.
 */
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { loadWorkerConfig } from '../../lib/config';
import { createLogger } from '../../lib/logging';
import { createWorkers } from '../../apps/worker/workers';

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: ['SIGINT', 'SIGTERM'] });
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const set = await createWorkers({ config, connection, log: createLogger('worker') });
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
