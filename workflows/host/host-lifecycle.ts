import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  ParentClosePolicy,
  condition,
  log,
  proxyActivities,
  setHandler,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  allHandlersFinished,
} from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import { FailureType, STATUS_MEMO_KEY, workflowIds, type OnboardHostInput } from '../contracts';
import { FINGERPRINT_PATTERN } from '../input-rules';
import { onboardHost, proxyLogin } from '../onboard-host';
import { HostAddressKey, HostFreshnessKey, HostIdKey, OnboardingPhaseKey } from '../search-attributes';
import {
  approveRepairHostKeyUpdate,
  hostFreshnessSignal,
  hostStatusQuery,
  offboardHostUpdate,
  onboardingProgressSignal,
  type FreshnessReport,
  type HostStatus,
  type ServiceAccess,
} from './messages';
import { HostState, type DegradedReason, type HostPhase } from './state';

type Activities = ReturnType<typeof createActivities>;

/** Tunable in tests; the defaults are what an operator gets. */
export interface HostLifecycleOptions {
  /** First wait between repair attempts; doubles up to maxRepairBackoffMs. */
  repairBackoffMs?: number;
  maxRepairBackoffMs?: number;
  /** How long a repair's verification waits for fresh points. */
  repairVerifyDeadlineMs?: number;
}

export const LIFECYCLE_DEFAULTS = { repairBackoffMs: 30_000, maxRepairBackoffMs: 15 * 60_000, repairVerifyDeadlineMs: 120_000 } as const;

const humanFailures = [FailureType.AuthFailed, FailureType.HostKeyMismatch];

// Every long activity heartbeats; a worker that dies is noticed within 10 s and the step resumes elsewhere.
const repair = proxyActivities<Activities>({
  startToCloseTimeout: '20 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '5s', maximumAttempts: 2, nonRetryableErrorTypes: [...humanFailures, FailureType.AnsibleFailed, FailureType.TunnelFailed, FailureType.NoPoints, FailureType.StalePoints] },
  summary: 'repair: tunnel, agent, verification',
});
const offboard = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 4, nonRetryableErrorTypes: [...humanFailures, FailureType.InvalidInput] },
  summary: 'offboard: undo one step',
});

function errorOf(err: unknown): { type: string; message: string } {
  for (let e: unknown = err; e instanceof Error; e = (e as { cause?: unknown }).cause) {
    if (e instanceof ApplicationFailure && e.type) return { type: e.type, message: e.message };
  }
  return { type: 'Failed', message: err instanceof Error ? err.message : String(err) };
}

/**
 * `host/<hostId>`: one entity per host from the first POST to offboarded. Its first stage is the onboarding
 * (`onboard/<hostId>`, a child that reports each phase); then it watches: the fleet-wide freshness sweep and the
 * tunnel tell it what changed (no timer per host), and a host that stops delivering is degraded, repaired along a
 * ladder with backoff, and back to healthy when its points are seen again. `offboard` undoes everything.
 * Every phase change goes through HostState (state.ts).
 */
export async function hostLifecycle(input: OnboardHostInput, options: HostLifecycleOptions = {}): Promise<HostStatus> {
  const opts = { ...LIFECYCLE_DEFAULTS, ...options };
  const now = () => Date.now();
  const status: HostStatus = {
    hostId: input.hostId,
    address: input.target.address,
    phase: 'onboarding',
    since: now(),
    repairs: [],
    repairsLastHour: 0,
    flapping: false,
  };
  const publish = () => {
    Object.assign(status, state.view(now()));
    upsertSearchAttributes([{ key: OnboardingPhaseKey, value: state.phase }]);
    upsertMemo({ [STATUS_MEMO_KEY]: status });
  };
  const state = new HostState('onboarding', now(), () => undefined);
  const moveTo = (phase: HostPhase, reason?: DegradedReason) => {
    if (state.phase === phase && state.reason === reason) return;
    state.moveTo(phase, now(), reason);
    publish();
  };

  let service: ServiceAccess | undefined;
  let freshness: FreshnessReport | undefined;
  let freshnessSeen = 0; // bumps on every signal, so waits wake on news
  let offboardRequested = false;
  let approvedKey: string | undefined;

  upsertSearchAttributes([
    { key: HostIdKey, value: input.hostId },
    { key: HostAddressKey, value: input.target.address },
  ]);
  publish();

  setHandler(hostStatusQuery, () => status);
  setHandler(onboardingProgressSignal, (p) => {
    if (p.service) service = p.service;
    // The child's phases are the host's while it onboards (state never lies: the host is where its onboarding is).
    if (!offboardRequested && state.can(p.phase) && state.phase !== 'failed') moveTo(p.phase);
  });
  setHandler(hostFreshnessSignal, (report) => {
    freshness = report;
    freshnessSeen++;
    status.lastPointAtMs = report.lastPointAtMs;
    upsertSearchAttributes([{ key: HostFreshnessKey, value: report.fresh ? 'fresh' : 'stale' }]);
    publish(); // signals come only on a change: one memo update per change
  });
  setHandler(
    offboardHostUpdate,
    () => {
      offboardRequested = true;
      return { accepted: true as const };
    },
    {
      validator: () => {
        if (state.phase === 'offboarding' || state.phase === 'offboarded') throw new Error(`host ${input.hostId} is already ${state.phase}`);
      },
    },
  );
  setHandler(
    approveRepairHostKeyUpdate,
    ({ hostKeySha256 }) => {
      approvedKey = hostKeySha256;
      return { accepted: true as const };
    },
    {
      validator: (arg) => {
        if (state.phase !== 'needs-host-key-approval') throw new Error(`host is not waiting for a host-key approval (phase ${state.phase})`);
        if (!arg || typeof arg.hostKeySha256 !== 'string' || !FINGERPRINT_PATTERN.test(arg.hostKeySha256)) {
          throw new Error('hostKeySha256 must look like SHA256:<43 base64 characters>');
        }
      },
    },
  );

  // ---- stage 1: onboarding, as a child that reports its phases ----
  const onboarded = await runOnboarding();

  // ---- stage 2: watching and repairing ----
  if (onboarded) {
    moveTo('healthy');
    let backoffMs = opts.repairBackoffMs;
    while (!offboardRequested) {
      const seen = freshnessSeen;
      await condition(() => offboardRequested || freshnessSeen !== seen);
      if (offboardRequested) break;
      if (freshness?.fresh) {
        if (state.phase === 'degraded') moveTo('healthy');
        backoffMs = opts.repairBackoffMs;
        continue;
      }
      // Stale: degraded with a name, then the ladder, then backoff (a fresh report or offboard cuts the wait short).
      if (state.phase === 'healthy') moveTo('degraded', 'NoRecentPoints');
      for (;;) {
        const repaired = await repairOnce(state.reason ?? 'NoRecentPoints');
        if (repaired || offboardRequested) break;
        const waitFor = backoffMs;
        backoffMs = Math.min(backoffMs * 2, opts.maxRepairBackoffMs);
        const before = freshnessSeen;
        await condition(() => offboardRequested || (freshnessSeen !== before && !!freshness?.fresh), waitFor);
        if (offboardRequested || freshness?.fresh) {
          if (freshness?.fresh && state.phase === 'degraded') moveTo('healthy');
          break;
        }
      }
    }
  } else if (!offboardRequested) {
    // A failed onboarding stays visible as failed until someone offboards (or posts the host again after that).
    await condition(() => offboardRequested);
  }

  // ---- stage 3: offboarding saga ----
  moveTo('offboarding');
  status.notCleaned = await undoEverything();
  moveTo('offboarded');
  await condition(allHandlersFinished);
  return status;

  /** Runs `onboard/<hostId>`; true when it ended healthy. An offboard request cancels it (its steps are undone after). */
  async function runOnboarding(): Promise<boolean> {
    const scope = new CancellationScope();
    const running = scope.run(async () => {
      const child = await startChild(onboardHost, {
        workflowId: workflowIds.onboarding(input.hostId),
        args: [input],
        parentClosePolicy: ParentClosePolicy.TERMINATE,
        staticSummary: `Onboarding of ${input.hostId} (stage 1 of host/${input.hostId})`,
      });
      return child.result();
    });
    const settled = running.then(
      (result) => ({ result }),
      (error: unknown) => ({ error }),
    );
    const first = await Promise.race([settled, condition(() => offboardRequested).then(() => 'offboard' as const)]);
    if (first === 'offboard') {
      // Cancel the onboarding and let it stop before its steps are undone.
      scope.cancel();
      await settled;
      return false;
    }
    if ('result' in first) {
      status.onboarding = stripService(first.result);
      if (first.result.service) service = first.result.service;
      return true;
    }
    const err = first.error;
    const details = (err instanceof ChildWorkflowFailure && err.cause instanceof ApplicationFailure ? err.cause.details?.[0] : undefined) as HostStatus['onboarding'];
    if (details) status.onboarding = details;
    log.warn('onboarding failed', { hostId: input.hostId, error: errorOf(err).message });
    if (!offboardRequested && state.can('failed')) moveTo('failed');
    return false;
  }

  /** One pass of the repair ladder, each rung idempotent and in the record; true when fresh points are seen again. */
  async function repairOnce(reason: DegradedReason): Promise<boolean> {
    if (!service) return false;
    moveTo('repairing', reason);
    const startedAt = now();
    const svc = service;
    type Rung = 'ok' | 'failed' | 'host-key' | 'unreachable';
    const rung = async (action: string, run: () => Promise<unknown>): Promise<Rung> => {
      try {
        await run();
        return 'ok';
      } catch (err) {
        const e = errorOf(err);
        state.recordRepair({ atMs: now(), reason, action, outcome: 'failed', error: `${e.type}: ${e.message}` });
        if (e.type === FailureType.HostKeyMismatch) return 'host-key';
        if (e.type === FailureType.HostUnreachable) return 'unreachable';
        return 'failed';
      }
    };
    let outcome: Rung = 'ok';
    if (svc.tunnel) {
      const t = svc.tunnel;
      outcome = await rung('restart the tunnel', () => repair.ensureTunnel(t, { connectDeadlineMs: 60_000, hostId: input.hostId }));
    }
    if (outcome === 'ok' || outcome === 'failed') {
      // Re-run the role: converges config and unit, and starts Telegraf if it died (idempotent).
      const outputUrl = status.onboarding?.agent?.outputUrl ?? '';
      outcome = await rung('re-run the agent role', () =>
        repair.installAgent({ hostId: input.hostId, target: svc.target, agent: input.agent, outputUrl, labels: input.labels }),
      );
    }
    if (outcome === 'ok') {
      outcome = await rung('verify fresh points', () => repair.verifyMetrics({ hostId: input.hostId, sinceMs: startedAt, deadlineMs: opts.repairVerifyDeadlineMs }));
      if (outcome === 'ok') {
        state.recordRepair({ atMs: now(), reason, action: svc.tunnel ? 'tunnel + agent role' : 'agent role', outcome: 'repaired' });
        moveTo('healthy');
        return true;
      }
    }
    if (outcome === 'host-key') {
      moveTo('needs-host-key-approval');
      await condition(() => approvedKey !== undefined || offboardRequested);
      if (!approvedKey) return false;
      const key = approvedKey;
      approvedKey = undefined;
      const tunnel = svc.tunnel && svc.tunnel.ssh.address === svc.target.address ? { ...svc.tunnel, ssh: { ...svc.tunnel.ssh, hostKeySha256: key } } : svc.tunnel;
      service = { target: { ...svc.target, hostKeySha256: key }, ...(tunnel ? { tunnel } : {}) };
      return repairOnce('HostKeyMismatch');
    }
    moveTo('degraded', outcome === 'unreachable' ? 'HostUnreachable' : reason);
    return false;
  }

  /** The saga's compensations, each idempotent; what could not be cleaned is listed, never hidden. */
  async function undoEverything(): Promise<string[]> {
    const notCleaned: string[] = [];
    const step = async (what: string, run: () => Promise<unknown>) => {
      try {
        await CancellationScope.nonCancellable(run);
      } catch (err) {
        const e = errorOf(err);
        notCleaned.push(`${what}: ${e.type}: ${e.message}`);
      }
    };
    const svc = service;
    const tunnelId = svc?.tunnel?.tunnelId ?? status.onboarding?.tunnelId;
    let tunnelStopped = false;
    if (tunnelId) {
      await step('tunnel', async () => {
        tunnelStopped = (await offboard.releaseTunnel({ tunnelId, hostId: input.hostId })).stopping;
      });
    }
    if (!svc) {
      if (status.onboarding?.cloudrootUser) notCleaned.push('cloudroot: the service user exists but its key is unknown here');
      return notCleaned;
    }
    await step('agent', () => offboard.uninstallAgent({ hostId: input.hostId, target: svc.target, agent: input.agent }));
    // A proxy's forward key goes with its keeper: other hosts behind the same proxy may still use both.
    if (svc.tunnel && input.dataPath.kind === 'proxy' && tunnelStopped) {
      const proxy = proxyLogin(input, svc.target);
      const t = svc.tunnel;
      await step('forward key on the proxy', () => offboard.revokeForwardKey({ tunnelId: t.tunnelId, target: proxy, hop: 'via' }));
    }
    await step('cloudroot', () => offboard.removeCloudroot({ hostId: input.hostId, target: svc.target }));
    return notCleaned;
  }
}

function stripService<T extends { service?: unknown }>(r: T): Omit<T, 'service'> {
  const { service: _service, ...rest } = r;
  return rest;
}


