import {
  ActivityCancellationType,
  ApplicationFailure,
  getExternalWorkflowHandle,
  patched,
  allHandlersFinished,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { TunnelActivities } from '../activities/tunnel';
import { FailureType, workflowIds, type TunnelRefusal, type TunnelSpec, type TunnelStats, type TunnelStatus } from './contracts';
import { tunnelReportSignal, type TunnelReport } from './host/messages';
import { detachTunnelHostUpdate, restartTunnelUpdate, stopTunnelUpdate, tunnelStatusQuery, updateTunnelSpecUpdate } from './messages';
import { TunnelIdKey } from './search-attributes';

/**
 * `tunnel/<tunnelId>`: keeps one SSH remote forward alive for as long as it is wanted.
 * The activity holds the forward for a lease and throws on any failure; its retry policy (forever, capped
 * backoff) is the reconnect loop and adds no history events. The workflow only loops on leases, handles
 * stop/restart, and continues-as-new so its history stays short.
 */

export interface TunnelKeeperState {
  /** Leases completed over all runs (carried through continue-as-new). */
  leases: number;
  /**
   * The hosts whose metrics use this tunnel (attach on updateSpec, detach on detachHost); the keeper stops with
   * its last host. Absent for keepers started before hosts were counted: they never stop by themselves.
   */
  hosts?: string[];
}
export interface TunnelKeeperOptions {
  /** How long one activity holds the forward before handing over to the next; default 1 h. */
  leaseMs?: number;
  /** Continue-as-new after this many leases in one run (also when the server suggests it); default 24. */
  leasesPerRun?: number;
}

export const KEEPER_DEFAULTS = {
  leaseMs: 60 * 60_000,
  leasesPerRun: 24,
  /** Slack over the lease for connect + clean shutdown before startToClose kills the attempt. */
  leaseMarginMs: 60_000,
  heartbeatTimeoutMs: 10_000,
  maxBackoffMs: 2_000,
} as const;

/** What the status query returns: TunnelStatus plus the lease count (the API may show it). */
export type KeeperStatus = TunnelStatus & { leases: number };

/** The activity as this spec wants it run (its timing shapes the timeouts and the backoff). */
function holdActivity(spec: TunnelSpec, leaseMs: number) {
  const heartbeatMs = spec.timing?.heartbeatMs;
  return proxyActivities<TunnelActivities>({
    startToCloseTimeout: leaseMs + KEEPER_DEFAULTS.leaseMarginMs,
    // A dead worker is noticed after this and the forward moves to another worker.
    heartbeatTimeout: heartbeatMs ? 3 * heartbeatMs : KEEPER_DEFAULTS.heartbeatTimeoutMs,
    // Stop/restart return only once the activity has unforwarded and closed its session.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      initialInterval: '200ms',
      backoffCoefficient: 2,
      maximumInterval: spec.timing?.maxBackoffMs ?? KEEPER_DEFAULTS.maxBackoffMs,
      // maximumAttempts unset = forever: a tunnel keeps trying until stopped (the SDK rejects 0).
    },
    summary: `forward ${spec.bind.address}:${spec.bind.port} on ${spec.ssh.address} to ${spec.target.host}:${spec.target.port}`,
  }).holdReverseForward;
}

/**
 * Patch: a forward the server refuses (changed host key, refused login) no longer fails the keeper. It tells its
 * hosts and waits for a new spec (the host's approval brings the new pin) or a restart; the hosts repair it.
 */
export const PARK_ON_REFUSAL_PATCH = 'park-on-refusal';

/** The failures no retry can fix: a person (or the host's repair) must act. */
const REFUSALS: readonly string[] = [FailureType.HostKeyMismatch, FailureType.AuthFailed];

function refusalOf(err: unknown): TunnelRefusal | undefined {
  for (let e: unknown = err; e instanceof Error; e = (e as { cause?: unknown }).cause) {
    if (e instanceof ApplicationFailure && e.type && REFUSALS.includes(e.type)) {
      const d = e.details?.[0];
      return { type: e.type, message: e.message, ...(d && typeof d === 'object' ? { details: d as Record<string, unknown> } : {}) };
    }
  }
  return undefined;
}

/** Whether a spec changes what the forward does. Each onboarding issues a new forward key, so its spec always differs. */
function sameSpec(a: TunnelSpec, b: TunnelSpec): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export async function tunnelKeeper(
  initialSpec: TunnelSpec,
  state: TunnelKeeperState = { leases: 0 },
  options: TunnelKeeperOptions = {},
): Promise<void> {
  const leaseMs = options.leaseMs ?? KEEPER_DEFAULTS.leaseMs;
  const leasesPerRun = options.leasesPerRun ?? KEEPER_DEFAULTS.leasesPerRun;
  let spec = initialSpec;
  const hosts: string[] | undefined = state.hosts ? [...state.hosts] : undefined;

  if (workflowInfo().typedSearchAttributes.get(TunnelIdKey) !== spec.tunnelId) {
    upsertSearchAttributes([{ key: TunnelIdKey, value: spec.tunnelId }]);
  }

  let leases = state.leases;
  let leasesThisRun = 0;
  let holds = 0; // activities started in this run
  let current: CancellationScope | undefined;
  let stopRequested = false;
  let restartPending = false;
  let closing = false; // the run is ending (stop, continue-as-new, failure): no further hold will start
  let refusal: TunnelRefusal | undefined; // parked: the server refused the forward
  let wakes = 0; // a new spec or a restart: a parked keeper tries again
  let leaseEnded = false; // the last hold ended with its lease, connected: the next one's "connected" is no news

  setHandler(tunnelStatusQuery, (): KeeperStatus => ({
    tunnelId: spec.tunnelId,
    state: stopRequested ? 'stopped' : refusal ? 'refused' : restartPending ? 'reconnecting' : 'connecting',
    ...(refusal ? { refusal, lastFailure: refusal.message } : {}),
    leases,
  }));

  /** Tells every host this tunnel carries (fire and forget: a host that is gone is not an error). */
  const report = (r: Omit<TunnelReport, 'tunnelId' | 'atMs'>) => {
    for (const hostId of hosts ?? []) {
      void getExternalWorkflowHandle(workflowIds.host(hostId))
        .signal(tunnelReportSignal, { tunnelId: spec.tunnelId, atMs: Date.now(), ...r })
        .catch(() => undefined);
    }
  };

  setHandler(stopTunnelUpdate, async () => {
    stopRequested = true;
    current?.cancel();
    await condition(() => current === undefined);
    return { stopped: true as const };
  });

  /** Ends the current hold; done when a fresh one has started (or the run ends and the next starts fresh anyway). */
  const restartHold = async () => {
    const seen = holds;
    restartPending = true;
    wakes++;
    current?.cancel();
    await condition(() => holds > seen || closing);
  };
  const notStopping = () => {
    if (stopRequested) throw new Error(`tunnel ${spec.tunnelId} is stopping`);
  };

  setHandler(
    restartTunnelUpdate,
    async () => {
      await restartHold();
      return { restarted: true as const };
    },
    { validator: notStopping },
  );

  setHandler(
    updateTunnelSpecUpdate,
    async ({ spec: next, hostId }) => {
      if (hostId && hosts && !hosts.includes(hostId)) hosts.push(hostId);
      const changed = !sameSpec(spec, next);
      if (changed) {
        spec = next;
        log.info('tunnel spec updated; restarting the forward', { tunnelId: spec.tunnelId, hostId });
        await restartHold();
      }
      return { changed, hosts: hosts?.length ?? -1 };
    },
    {
      validator: (arg) => {
        notStopping();
        if (!arg?.spec || arg.spec.tunnelId !== spec.tunnelId) throw new Error(`a spec for tunnel ${spec.tunnelId} is required`);
        if (!arg.spec.ssh?.address || !arg.spec.bind?.port || !arg.spec.target?.host) throw new Error('the spec needs ssh, bind and target');
      },
    },
  );

  setHandler(
    detachTunnelHostUpdate,
    async ({ hostId }) => {
      if (!hosts) return { remaining: -1, stopping: false };
      const i = hosts.indexOf(hostId);
      if (i >= 0) hosts.splice(i, 1);
      if (hosts.length > 0) return { remaining: hosts.length, stopping: false };
      log.info('last host detached; stopping the tunnel', { tunnelId: spec.tunnelId, hostId });
      stopRequested = true;
      current?.cancel();
      await condition(() => current === undefined);
      return { remaining: 0, stopping: true };
    },
    {
      validator: (arg) => {
        if (typeof arg?.hostId !== 'string' || arg.hostId.length === 0) throw new Error('hostId is required');
      },
    },
  );

  try {
    while (!stopRequested) {
      if (leasesThisRun >= leasesPerRun || workflowInfo().continueAsNewSuggested) break;
      const scope = new CancellationScope();
      current = scope;
      holds++;
      restartPending = false;
      refusal = undefined;
      const continuing: boolean = leaseEnded;
      leaseEnded = false;
      try {
        const holdReverseForward = holdActivity(spec, leaseMs);
        const held = spec;
        // The activity tells the hosts when its forward comes up or goes down (it alone sees its retries).
        const result: TunnelStats = await scope.run((): Promise<TunnelStats> => holdReverseForward(held, { leaseMs, ...(hosts?.length ? { reportTo: [...hosts], continuing } : {}) }));
        leases++;
        leasesThisRun++;
        leaseEnded = result?.connected !== false;
      } catch (err) {
        // After our own stop/restart, however the activity ended is expected: cancelled, or (on a loaded
        // worker) timed out before it could acknowledge. A refusal (AuthFailed, HostKeyMismatch) parks the
        // keeper until its hosts repair it; anything else (the workflow itself being cancelled) ends it.
        const ours = (stopRequested || restartPending) && !CancellationScope.current().consideredCancelled;
        if (ours && !isCancellation(err)) log.warn('tunnel activity ended with an error after stop/restart', { error: String(err) });
        const refused = ours ? undefined : refusalOf(err);
        if (refused && !CancellationScope.current().consideredCancelled && patched(PARK_ON_REFUSAL_PATCH)) {
          refusal = refused;
          current = undefined;
          log.warn('the server refused the forward; waiting for a new spec', { tunnelId: spec.tunnelId, type: refused.type });
          const offered = refused.details?.offered;
          report({ state: 'refused', error: { type: refused.type, message: refused.message }, ...(typeof offered === 'string' ? { offered } : {}) });
          const seen = wakes;
          await condition(() => stopRequested || wakes !== seen);
          continue;
        }
        if (!ours) throw err;
      } finally {
        current = undefined;
      }
    }
  } finally {
    closing = true;
    // Let stop/restart callers get their answer before the run ends, even when the workflow was cancelled.
    await CancellationScope.nonCancellable(() => condition(allHandlersFinished));
  }

  if (stopRequested) return;
  await continueAsNew<typeof tunnelKeeper>(spec, { leases, ...(hosts ? { hosts } : {}) }, options);
}
