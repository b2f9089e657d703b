import { tunnelReportSignal, type TunnelReport } from '../../workflows/host/messages';
import { workflowIds } from '../../workflows/contracts';
import type { ActivityDeps } from '../deps';
import { ensureTunnel, releaseTunnel } from './ensure-tunnel';
import { holdReverseForward } from './hold-reverse-forward';

export { tunnelStatus, tunnelStatusFrom, observeDescription, type KeeperObservation } from './describe';
export { TUNNEL_DEFAULTS } from './hold-reverse-forward';

/** Tunnel activities: `holdReverseForward` runs on the tunnel task queue, `ensureTunnel` in onboardings. */
export function createTunnelActivities(deps: Pick<ActivityDeps, 'keyring' | 'log' | 'temporal'> & { influx?: { ca?: string } }) {
  const client = deps.temporal?.client;
  // One signal per host and change; a host that is gone (offboarded, never started) is nothing to report.
  const report = client
    ? (hostIds: readonly string[], r: TunnelReport) => {
        for (const hostId of hostIds) {
          client.workflow.getHandle(workflowIds.host(hostId)).signal(tunnelReportSignal, r).catch((err: unknown) => {
            deps.log.debug('tunnel report not delivered', { hostId, tunnelId: r.tunnelId, error: (err as Error).message });
          });
        }
      }
    : undefined;
  return {
    holdReverseForward: holdReverseForward({ ...deps, ...(report ? { report } : {}) }),
    ensureTunnel: ensureTunnel(deps),
    releaseTunnel: releaseTunnel(deps),
  };
}

export type TunnelActivities = ReturnType<typeof createTunnelActivities>;
