import net from 'node:net';
import tls from 'node:tls';
import { Context } from '@temporalio/activity';
import type { ClientChannel, TcpConnectionDetails } from 'ssh2';
import type { Keyring } from '../../lib/keyring';
import type { Logger } from '../../lib/logging';
import type { TunnelSpec, TunnelStats } from '../../workflows/contracts';
import type { TunnelReport } from '../../workflows/host/messages';
import { dialSsh, type SshSession } from '../ssh/dialer';
import { tunnelFailed } from './errors';

/**
 * Holds one SSH remote forward (`forwardIn`) for a lease and pipes every connection that arrives on it to
 * the target (InfluxDB). It never reconnects by itself: it throws a retryable `TunnelFailed` the moment the
 * session dies, and the activity retry policy is the reconnect loop (retries add no history events).
 */

export const TUNNEL_DEFAULTS = {
  heartbeatMs: 2_000,
  keepaliveIntervalMs: 2_000,
  keepaliveCountMax: 3,
  leaseMs: 60 * 60_000,
  readyTimeoutMs: 10_000,
  healthyResetMs: 5 * 60_000,
} as const;

/** How long cleanup waits for the host to confirm `cancel-tcpip-forward` before closing anyway. */
const UNFORWARD_GRACE_MS = 1_000;

export interface HoldReverseForwardDeps {
  keyring: Keyring;
  log: Logger;
  /** The CA of an https InfluxDB (forwards to a `tls` target verify its certificate against it, or the system's). */
  influx?: { ca?: string };
  /** The project's one SSH dialer; replaceable only so unit tests can fake a session. */
  dial?: typeof dialSsh;
  /** Tells host entities about the forward (signals `host/<id>`); best effort, never throws. */
  report?: (hostIds: readonly string[], report: TunnelReport) => void;
}

export interface HoldReverseForwardOptions {
  /** The activity returns normally after this long; the keeper workflow then starts the next lease. */
  leaseMs?: number;
  /** The hosts this forward carries: each hears when it comes up and when it goes down (changes only). */
  reportTo?: string[];
  /** The previous lease ended connected: this lease's first "connected" is no news to the hosts. */
  continuing?: boolean;
}

type Outcome = { kind: 'lease-ended' } | { kind: 'failed'; error: unknown };

interface Pipe {
  destroy(): void;
}

export function holdReverseForward(deps: HoldReverseForwardDeps) {
  const dial = deps.dial ?? dialSsh;
  return async function holdReverseForward(spec: TunnelSpec, opts: HoldReverseForwardOptions = {}): Promise<TunnelStats> {
    const ctx = Context.current();
    const attempt = ctx.info.attempt;
    const heartbeatMs = spec.timing?.heartbeatMs ?? TUNNEL_DEFAULTS.heartbeatMs;
    const keepaliveIntervalMs = spec.timing?.keepaliveIntervalMs ?? TUNNEL_DEFAULTS.keepaliveIntervalMs;
    const keepaliveCountMax = spec.timing?.keepaliveCountMax ?? TUNNEL_DEFAULTS.keepaliveCountMax;
    const leaseMs = opts.leaseMs ?? TUNNEL_DEFAULTS.leaseMs;
    const bindLabel = `${spec.bind.address}:${spec.bind.port}`;
    const log = deps.log.child({ tunnelId: spec.tunnelId, host: spec.ssh.address, bind: bindLabel, attempt });

    // The previous attempt's last heartbeat says why we are here again (best effort: it may not have been sent).
    const previous = ctx.info.heartbeatDetails as Partial<TunnelStats> | undefined;
    const stats: TunnelStats = {
      connected: false,
      openConnections: 0,
      totalConnections: 0,
      bytesIn: 0,
      bytesOut: 0,
      reconnects: attempt - 1,
      ...(typeof previous?.lastError === 'string' ? { lastError: previous.lastError } : {}),
    };
    const beat = () => ctx.heartbeat({ ...stats });
    // Only changes reach the hosts: up after being down (or first up), down after being up (or a first try failing).
    const tell = (state: 'connected' | 'down', error?: string) => {
      if (!deps.report || !opts.reportTo?.length) return;
      deps.report(opts.reportTo, { tunnelId: spec.tunnelId, state, atMs: Date.now(), ...(error ? { error: { type: 'TunnelFailed', message: error } } : {}) });
    };
    let upThisAttempt = false;

    // Heartbeats carry the stats and are also how a cancellation reaches us, so they run from the very start.
    const heartbeatTimer = setInterval(beat, heartbeatMs);
    let session: SshSession | undefined;
    const pipes = new Set<Pipe>();
    let closing = false;
    let forwarded = false;
    let leaseTimer: NodeJS.Timeout | undefined;
    let cancelled: unknown;
    const onCancel = () => {
      cancelled = ctx.cancellationSignal.reason ?? new Error('cancelled');
    };
    ctx.cancellationSignal.addEventListener('abort', onCancel);
    let onCancelled: (() => void) | undefined;

    try {
      session = await dialUnlessCancelled(
        dial(spec.ssh, {
          keyring: deps.keyring,
          readyTimeoutMs: TUNNEL_DEFAULTS.readyTimeoutMs,
          keepaliveIntervalMs,
          keepaliveCountMax,
          log,
        }),
        ctx,
      );
      const client = session.client;
      // Small writes (a metrics batch, its 204) must not wait for Nagle + delayed ACK (~40 ms a round trip).
      client.setNoDelay(true);

      const outcome = await new Promise<Outcome>((resolve) => {
        const fail = (reason: string) => resolve({ kind: 'failed', error: tunnelFailed(spec.tunnelId, reason) });
        // ssh2 reports a keepalive timeout as an 'error' (level client-timeout) and then closes the socket.
        client.on('error', (err: Error & { level?: string }) =>
          fail(
            err.level === 'client-timeout'
              ? `no answer from ${spec.ssh.address} for ${(keepaliveCountMax + 1) * keepaliveIntervalMs} ms (ssh keepalive timeout)`
              : `ssh connection error: ${err.message}`,
          ),
        );
        client.on('end', () => fail(`ssh session to ${spec.ssh.address} ended by the host`));
        client.on('close', () => fail(`ssh connection to ${spec.ssh.address} closed`));
        if (ctx.cancellationSignal.aborted) onCancel();
        if (cancelled !== undefined) return resolve({ kind: 'failed', error: cancelled });
        onCancelled = () => resolve({ kind: 'failed', error: cancelled });
        ctx.cancellationSignal.addEventListener('abort', onCancelled, { once: true });
        leaseTimer = setTimeout(() => resolve({ kind: 'lease-ended' }), leaseMs);

        client.on('tcp connection', (_info: TcpConnectionDetails, accept: () => ClientChannel, reject: () => void) =>
          pipeToTarget(accept, reject),
        );
        try {
          client.forwardIn(spec.bind.address, spec.bind.port, (err, boundPort) => {
            if (err) {
              // A half-dead earlier session can still hold the port until the host's ClientAlive check drops it.
              return fail(`remote port forwarding failed for ${bindLabel} (is a stale session still holding it?): ${err.message}`);
            }
            forwarded = true;
            stats.connected = true;
            stats.boundPort = boundPort;
            stats.connectedSinceMs = Date.now();
            delete stats.lastError;
            beat();
            log.info('tunnel connected', { boundPort });
            upThisAttempt = true;
            if (!(attempt === 1 && opts.continuing)) tell('connected');
          });
        } catch (err) {
          fail(`ssh connection lost before forwarding: ${(err as Error).message}`);
        }
      });

      if (outcome.kind === 'lease-ended') {
        log.info('tunnel lease ended', { ...stats });
        return { ...stats };
      }
      // Retries back off per attempt within a lease: after a long healthy run, hand over to a fresh activity
      // (attempt 1, no backoff) rather than wait out the backoff earned by drops long ago.
      const healthyResetMs = spec.timing?.healthyResetMs ?? TUNNEL_DEFAULTS.healthyResetMs;
      if (outcome.error !== cancelled && stats.connected && stats.connectedSinceMs !== undefined && Date.now() - stats.connectedSinceMs >= healthyResetMs) {
        stats.lastError = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
        stats.connected = false;
        log.warn('tunnel down after a healthy run; starting afresh', { error: stats.lastError, upMs: Date.now() - stats.connectedSinceMs });
        tell('down', stats.lastError);
        return { ...stats };
      }
      throw outcome.error;
    } catch (err) {
      if (err !== cancelled) {
        stats.lastError = err instanceof Error ? err.message : String(err);
        log.warn('tunnel down', { error: stats.lastError });
        // A refusal (non-retryable) is the keeper's to report: it parks and says why.
        const refusal = (err as { nonRetryable?: boolean })?.nonRetryable === true;
        if (!refusal && (upThisAttempt || attempt === 1)) tell('down', stats.lastError);
      }
      stats.connected = false;
      if (err !== cancelled) beat(); // best effort: the next attempt reads it back as the reason it is retrying
      throw err;
    } finally {
      closing = true;
      clearInterval(heartbeatTimer);
      clearTimeout(leaseTimer);
      ctx.cancellationSignal.removeEventListener('abort', onCancel);
      if (onCancelled) ctx.cancellationSignal.removeEventListener('abort', onCancelled);
      if (session) await shutDown(session);
    }

    /** Connects to the target first and only then accepts the channel, so an unreachable target is a refused connection. */
    function pipeToTarget(accept: () => ClientChannel, reject: () => void) {
      const safeReject = () => {
        try {
          reject();
        } catch {
          // The session is already gone; nothing to refuse.
        }
      };
      if (closing) return safeReject();
      // Telegraf speaks plain HTTP into the forward; an https InfluxDB gets TLS from here (certificate checked).
      const upstream = spec.target.tls
        ? tls.connect({
            host: spec.target.host,
            port: spec.target.port,
            servername: net.isIP(spec.target.host) ? undefined : spec.target.host,
            ...(deps.influx?.ca ? { ca: deps.influx.ca } : {}),
          })
        : net.connect({ host: spec.target.host, port: spec.target.port });
      const connectEvent = spec.target.tls ? 'secureConnect' : 'connect';
      let channel: ClientChannel | undefined;
      const pipe: Pipe = {
        destroy: () => {
          upstream.destroy();
          channel?.destroy();
        },
      };
      pipes.add(pipe);
      const onConnectError = (err: Error) => {
        pipes.delete(pipe);
        stats.lastError = `target ${spec.target.host}:${spec.target.port} unreachable: ${err.message}`;
        log.warn('tunnel target unreachable', { error: err.message });
        safeReject();
      };
      upstream.once('error', onConnectError);
      upstream.once(connectEvent, () => {
        upstream.off('error', onConnectError);
        if (closing) {
          pipes.delete(pipe);
          upstream.destroy();
          return safeReject();
        }
        upstream.setNoDelay(true);
        const ch = accept();
        channel = ch;
        stats.openConnections++;
        stats.totalConnections++;
        let finished = false;
        const finish = () => {
          if (finished) return;
          finished = true;
          stats.openConnections--;
          pipes.delete(pipe);
          upstream.destroy();
          ch.destroy();
        };
        ch.on('data', (chunk: Buffer) => (stats.bytesIn += chunk.length));
        upstream.on('data', (chunk: Buffer) => (stats.bytesOut += chunk.length));
        ch.on('error', finish);
        ch.stderr?.on('error', () => undefined);
        upstream.on('error', finish);
        ch.on('close', finish);
        upstream.on('close', finish);
        // pipe() keeps half-closes (EOF one way, data still flowing back) and backpressure.
        ch.pipe(upstream);
        upstream.pipe(ch);
      });
    }

    async function shutDown(s: SshSession) {
      const client = s.client;
      // Late errors from a closing session must not become unhandled 'error' events on the worker.
      client.on('error', () => undefined);
      client.removeAllListeners('tcp connection');
      if (forwarded) await unforward(client);
      for (const p of pipes) p.destroy();
      pipes.clear();
      await s.close();
    }

    /** Releases the listener on the host explicitly, so it is gone before we report back (not when sshd notices). */
    function unforward(client: SshSession['client']): Promise<void> {
      return new Promise((resolve) => {
        const timer = setTimeout(resolve, UNFORWARD_GRACE_MS);
        try {
          // With port 0 (host picks one) the forward is known by the port it got.
          client.unforwardIn(spec.bind.address, stats.boundPort ?? spec.bind.port, () => {
            clearTimeout(timer);
            resolve();
          });
        } catch {
          // "Not connected": the host already dropped the session and with it the listener.
          clearTimeout(timer);
          resolve();
        }
      });
    }
  };
}

/**
 * Waits for the dial even when cancelled meanwhile (it is bounded by readyTimeout), so a session that
 * completes after the cancellation is closed here and not leaked; then rethrows the cancellation.
 */
async function dialUnlessCancelled(dialing: Promise<SshSession>, ctx: Context): Promise<SshSession> {
  let cancelledReason: unknown;
  const onAbort = () => (cancelledReason = ctx.cancellationSignal.reason ?? new Error('cancelled'));
  ctx.cancellationSignal.addEventListener('abort', onAbort);
  try {
    const session = await dialing;
    if (cancelledReason !== undefined || ctx.cancellationSignal.aborted) {
      await session.close();
      throw cancelledReason ?? ctx.cancellationSignal.reason;
    }
    return session;
  } finally {
    ctx.cancellationSignal.removeEventListener('abort', onAbort);
  }
}
