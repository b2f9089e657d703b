import type { TunnelSpec } from '../workflows/contracts';
import { influxTarget } from '../lib/config';
import type { ActivityDeps } from './deps';
import { createSshActivities } from './ssh';
import { createAnsibleActivities } from './ansible';
import { createTunnelActivities } from './tunnel';
import type { EnsureTunnelOptions } from './tunnel/ensure-tunnel';
import { verifyMetrics } from './metrics/verify-metrics';
import { sweepFreshness } from './metrics/freshness';
import { workerInfo } from './worker-info';
import { createFleetActivities } from './fleet/fleet-hosts';
import { createFleetSourceActivities } from './fleet/fleet-source';
import { createInventoryActivities } from './inventory';

export type { ActivityDeps } from './deps';

/** A tunnel as the onboarding workflow asks for it; where the forward delivers is the worker's InfluxDB. */
export type TunnelRequest = Omit<TunnelSpec, 'target'> & { target?: TunnelSpec['target'] };

/** Every activity the worker registers, built from explicit dependencies. */
export function createActivities(deps: ActivityDeps) {
  const tunnels = createTunnelActivities(deps);
  return {
    ...createSshActivities(deps),
    ...createAnsibleActivities(deps),
    holdReverseForward: tunnels.holdReverseForward,
    ensureTunnel: (spec: TunnelRequest, opts: EnsureTunnelOptions) =>
      tunnels.ensureTunnel({ ...spec, target: spec.target ?? influxTarget(deps.influx.url) }, opts),
    releaseTunnel: tunnels.releaseTunnel,
    verifyMetrics: verifyMetrics(deps),
    sweepFreshness: sweepFreshness(deps),
    workerInfo,
    ...createFleetActivities(deps),
    ...createFleetSourceActivities(deps, createInventoryActivities(deps).readInventory),
  };
}
