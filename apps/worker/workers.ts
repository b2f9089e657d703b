import { NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DEFAULT_ONBOARDING_ACTIVITY_SLOTS, type WorkerConfig } from '../../lib/config';
import { Client } from '@temporalio/client';
import { createActivities, type ActivityDeps } from '../../activities';
import { sweepStalePlaybookRuns } from '../../activities/ansible';
import { dataConverterFor } from '../../lib/temporal';
import { createLogger, type Logger } from '../../lib/logging';

import { bundleWorkflows } from './bundle';

export interface WorkerSet {
  workers: Worker[];
  /**
   * Resolves when every worker has drained (after shutdown()). First sweeps the Ansible runs of dead workers on this
   * machine (key dirs, orphaned ansible-playbook process groups), then again every `sweepIntervalMs` while running.
   */
  run(): Promise<void>;
  shutdown(): void;
}

/**
 * Two workers on one connection: onboarding (short activities, bounded Ansible concurrency) and tunnels
 * (long-held forwards on their own queue, so they never starve onboarding).
 */
export async function createWorkers(opts: {
  config: WorkerConfig;
  connection: NativeConnection;
  bundle?: WorkflowBundleWithSourceMap;
  deps?: Partial<ActivityDeps>;
  log?: Logger;
  identity?: string;
  /** Tests only: observe or decorate the real activities (e.g. act on the fleet between two steps). */
  wrapActivities?: (activities: ReturnType<typeof createActivities>) => Record<string, (...args: any[]) => Promise<unknown>>;
  /** How often run() sweeps stale playbook runs (default 60 s). */
  sweepIntervalMs?: number;
}): Promise<WorkerSet> {
  const { config, connection } = opts;
  const log = opts.log ?? createLogger('worker');
  const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter: dataConverterFor(config.keyring) });
  const deps: ActivityDeps = {
    keyring: config.keyring,
    influx: config.influx,
    telegrafArtifact: config.telegrafArtifact,
    ...(config.installBatch ? { installBatch: config.installBatch } : {}),
    ...(config.inventory ? { inventory: config.inventory } : {}),
    temporal: { client, tunnelTaskQueue: config.temporal.tunnelTaskQueue, hostTaskQueue: config.temporal.onboardingTaskQueue },
    log,
    ...opts.deps,
  };
  const real = createActivities(deps);
  const activities = opts.wrapActivities ? opts.wrapActivities(real) : real;
  const workflowBundle = opts.bundle ?? (await bundleWorkflows());
  const dataConverter = dataConverterFor(config.keyring);
  const common = { connection, namespace: config.temporal.namespace, workflowBundle, activities, dataConverter, ...(opts.identity ? { identity: opts.identity } : {}) };
  const workers = await Promise.all([
    Worker.create({
      ...common,
      taskQueue: config.temporal.onboardingTaskQueue,
      maxConcurrentActivityTaskExecutions: config.onboardingActivitySlots ?? DEFAULT_ONBOARDING_ACTIVITY_SLOTS,
      shutdownGraceTime: '30s',
    }),
    Worker.create({
      ...common,
      taskQueue: config.temporal.tunnelTaskQueue,
      // Each held forward is one long-running activity slot.
      maxConcurrentActivityTaskExecutions: 1000,
      // "connected", stop and restart travel through heartbeats: do not let the SDK hold them back for seconds.
      maxHeartbeatThrottleInterval: '1s',
      shutdownGraceTime: '5s',
    }),
  ]);
  let sweeping: Promise<unknown> | undefined;
  const sweep = () => (sweeping ??= sweepStalePlaybookRuns({ log }).finally(() => (sweeping = undefined)));
  return {
    workers,
    run: async () => {
      // Before polling: an ansible-playbook a crashed worker left running is gone before its retry can start here.
      await sweep();
      const timer = setInterval(() => void sweep(), opts.sweepIntervalMs ?? 60_000);
      try {
        await Promise.all(workers.map((w) => w.run()));
      } finally {
        clearInterval(timer);
        await sweeping;
      }
    },
    shutdown: () => workers.forEach((w) => w.getState() === 'RUNNING' && w.shutdown()),
  };
}
