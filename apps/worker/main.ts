import { NativeConnection, Runtime, DefaultLogger } from '@temporalio/worker';
import { loadWorkerConfig, type WorkerConfig } from '../../lib/config';
import { connectClient } from '../../lib/temporal';
import { createLogger, type Logger } from '../../lib/logging';
import { ensureFreshnessSchedule } from './freshness-schedule';
import { createWorkers } from './workers';

/** The worker process: runs until SIGINT/SIGTERM, then drains in-flight tasks before exiting. */
async function main(): Promise<void> {
  const log = createLogger('worker');
  const config = loadWorkerConfig();
  // The SDK installs SIGINT/SIGTERM handlers that begin a graceful shutdown of every worker.
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: ['SIGINT', 'SIGTERM'] });
  const connection = await NativeConnection.connect({ address: config.temporal.address, tls: config.temporal.tls || undefined });
  const set = await createWorkers({ config, connection, log });
  await ensureSweepSchedule(config, log);
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

/**
 * The fleet-wide freshness sweep's Schedule, here and only here: the worker process of a deployment, not every
 * createWorkers() (tests and benchmarks run those by the dozen against one server). AO_FRESHNESS_SWEEP_MS=0 skips it.
 */
async function ensureSweepSchedule(config: WorkerConfig, log: Logger): Promise<void> {
  const f = config.freshness;
  if (!f || f.sweepEveryMs === 0) {
    log.info('freshness sweep schedule left alone (AO_FRESHNESS_SWEEP_MS=0)');
    return;
  }
  const client = await connectClient(config, config.keyring);
  try {
    const outcome = await ensureFreshnessSchedule(client, {
      taskQueue: config.temporal.onboardingTaskQueue,
      everyMs: f.sweepEveryMs,
      staleAfterMs: f.staleAfterMs,
    });
    log.info('freshness sweep schedule', { outcome, everyMs: f.sweepEveryMs, staleAfterMs: f.staleAfterMs });
  } catch (err) {
    // Onboarding and tunnels do not need it: run without (hosts are not watched) rather than not at all.
    log.error('freshness sweep schedule could not be ensured; hosts are not watched until a worker starts that can', {
      error: (err as Error).message,
    });
  } finally {
    await client.connection.close();
  }
}

main().catch((err) => {
  console.error(JSON.stringify({ level: 'error', component: 'worker', msg: 'worker failed', error: (err as Error).message }));
  process.exit(1);
});
