import { readFileSync } from 'node:fs';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { createWorkers } from '../../apps/worker/workers';
import { loadWorkerConfig } from '../../lib/config';
import { createLogger } from '../../lib/logging';

/**
 * A worker process for tests that need real, separately killable workers (failover). Like apps/worker/main.ts,
 * plus what tests need: a distinct identity (AO_WORKER_IDENTITY), a workflow bundle prepared once by the test
 * (AO_WORKFLOW_BUNDLE_CODE / _MAP: bundling costs seconds of CPU per process), a "worker ready" line once the
 * workers poll, and exit when the parent test process is gone (no orphans even if jest is killed).
 */
export const READY_MESSAGE = 'worker ready';

async function main(): Promise<void> {
  const identity = process.env.AO_WORKER_IDENTITY || undefined;
  const log = createLogger('worker-child', identity ? { identity } : {});
  const config = loadWorkerConfig();
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: ['SIGINT', 'SIGTERM'] });

  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(2); // re-parented: the test process died
  }, 500).unref();

  const codePath = process.env.AO_WORKFLOW_BUNDLE_CODE;
  const bundle = codePath
    ? { code: readFileSync(codePath, 'utf8'), sourceMap: readFileSync(process.env.AO_WORKFLOW_BUNDLE_MAP ?? `${codePath}.map`, 'utf8') }
    : undefined;
  const connection = await NativeConnection.connect({ address: config.temporal.address, tls: config.temporal.tls || undefined });
  const set = await createWorkers({ config, connection, log, ...(bundle ? { bundle } : {}), ...(identity ? { identity } : {}) });
  const running = set.run();
  log.info(READY_MESSAGE, { pid: process.pid, queues: [config.temporal.onboardingTaskQueue, config.temporal.tunnelTaskQueue] });
  try {
    await running;
  } finally {
    await connection.close();
  }
}

main().catch((err) => {
  console.error(JSON.stringify({ level: 'error', component: 'worker-child', msg: 'worker failed', error: (err as Error).message }));
  process.exit(1);
});
