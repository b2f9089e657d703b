import type { ActivityDeps } from '../deps';
import { ensureTunnel, releaseTunnel } from './ensure-tunnel';
import { holdReverseForward } from './hold-reverse-forward';

export { tunnelStatus, tunnelStatusFrom, observeDescription, type KeeperObservation } from './describe';
export { TUNNEL_DEFAULTS } from './hold-reverse-forward';

/** Tunnel activities: `holdReverseForward` runs on the tunnel task queue, `ensureTunnel` in onboardings. */
export function createTunnelActivities(deps: Pick<ActivityDeps, 'keyring' | 'log' | 'temporal'> & { influx?: { ca?: string } }) {
  return {
    holdReverseForward: holdReverseForward(deps),
    ensureTunnel: ensureTunnel(deps),
    releaseTunnel: releaseTunnel(deps),
  };
}

export type TunnelActivities = ReturnType<typeof createTunnelActivities>;
