import type { TunnelStats } from '../../workflows/contracts';

/** What a connected forward heartbeats; for fake holdReverseForward activities. */
export function connectedStats(boundPort: number, attempt: number, connectedSinceMs = Date.now()): TunnelStats {
  return {
    connected: true,
    boundPort,
    openConnections: 0,
    totalConnections: 0,
    bytesIn: 0,
    bytesOut: 0,
    connectedSinceMs,
    reconnects: attempt - 1,
  };
}
