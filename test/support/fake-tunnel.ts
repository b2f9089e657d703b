import { Context } from '@temporalio/activity';
import type { Keyring } from '../../lib/keyring';
import { sealSecret } from '../../lib/sealed-secret';
import type { TunnelSpec, TunnelStats } from '../../workflows/contracts';

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

/** A keeper spec whose SSH side is never dialled (the hold activity is a fake). */
export function fakeTunnelSpec(keyring: Keyring, tunnelId: string, sshAddress: string, timing: TunnelSpec['timing']): TunnelSpec {
  return {
    tunnelId,
    ssh: { address: sshAddress, port: 22, credential: { username: 'cloudroot', password: sealSecret(keyring, 'unused') } },
    bind: { address: '127.0.0.1', port: 18086 },
    target: { host: '127.0.0.1', port: 8086 },
    timing,
  };
}

/**
 * A fake holdReverseForward that heartbeats connected stats like the real one until cancelled; `onCall` sees each
 * call (its spec and activity context) first.
 */
export function holdsConnected(onCall: (spec: TunnelSpec, ctx: Context) => void = () => undefined) {
  return async (spec: TunnelSpec, _opts?: { leaseMs?: number }): Promise<TunnelStats> => {
    const ctx = Context.current();
    onCall(spec, ctx);
    const stats = connectedStats(spec.bind.port, ctx.info.attempt, Date.now());
    ctx.heartbeat(stats);
    const timer = setInterval(() => ctx.heartbeat(stats), 200);
    try {
      await ctx.sleep(60_000);
      return stats;
    } finally {
      clearInterval(timer);
    }
  };
}
