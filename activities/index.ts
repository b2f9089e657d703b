import type { ActivityDeps } from './deps';
import { createSshActivities } from './ssh';
import { createAnsibleActivities } from './ansible';
import { createTunnelActivities } from './tunnel';
import { verifyMetrics } from './metrics/verify-metrics';
import { workerInfo } from './worker-info';

export type { ActivityDeps } from './deps';

/** Every activity the worker registers, built from explicit dependencies. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createSshActivities(deps),
    ...createAnsibleActivities(deps),
    ...createTunnelActivities(deps),
    verifyMetrics: verifyMetrics(deps),
    workerInfo,
  };
}
