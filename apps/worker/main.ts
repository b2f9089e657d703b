import { NativeConnection, Runtime, DefaultLogger } from '@temporalio/worker';
import { loadWorkerConfig } from '../../lib/config';
import { createLogger } from '../../lib/logging';
import { createWorkers } from './workers';

/** The worker process: runs until SIGINT/SIGTERM, then drains in-flight tasks before exiting. */
async function main(): Promise<void> {
  const log = createLogger('worker');
  const config = loadWorkerConfig();
  // The SDK installs SIGINT/SIGTERM handlers that begin a graceful shutdown of every worker.
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: ['SIGINT', 'SIGTERM'] });
  const connection = await NativeConnection.connect({ address: config.temporal.address, tls: config.temporal.tls || undefined });
  const set = await createWorkers({ config, connection, log });
  log.info('worker started', {
    temporal: config.temporal.address,
    queues: [config.temporal.onboardingTaskQueue, config.temporal.tunnelTaskQueue],
  });
  try {
    await set.run();
  } finally {
    await connection.close();
  }
  log.info('worker stopped');
}

main().catch((err) => {
  console.error(JSON.stringify({ level: 'error', component: 'worker', msg: 'worker failed', error: (err as Error).message }));
  process.exit(1);
});
