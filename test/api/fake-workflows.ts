// Stand-ins for onboardHost / tunnelKeeper with the real message definitions, so the API can be tested
// against a real Temporal server without SSH hosts. Deterministic workflow code only.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  defineSignal,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { STATUS_MEMO_KEY, type OnboardHostInput, type OnboardingStatus, type SshCredential, type TunnelStatus } from '../../workflows/contracts';
import { changeHostUpdate, hostStatusQuery, offboardHostUpdate, rotateKeyUpdate, type ChangeRecord, type HostStatus } from '../../workflows/host/messages';
import {
  approveHostKeyUpdate,
  onboardingStatusQuery,
  provideCredentialsUpdate,
  restartTunnelUpdate,
  stopTunnelUpdate,
  tunnelStatusQuery,
} from '../../workflows/messages';
import { OnboardingPhaseKey } from '../../workflows/search-attributes';
import type { FakeActivities } from './fake-activities';

export const OFFERED_KEY = 'SHA256:' + 'A'.repeat(43);

const { holdReverseForward } = proxyActivities<FakeActivities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '100 ms', backoffCoefficient: 1 },
});

/** Waits for credentials, then for a host-key approval, then reports healthy with a tunnel. */
export async function onboardHost(input: OnboardHostInput): Promise<OnboardingStatus> {
  const started = workflowInfo().startTime.getTime();
  const status: OnboardingStatus = {
    hostId: input.hostId,
    address: input.target.address,
    phase: 'needs-credentials',
    steps: [{ step: 'probe', startedAtMs: started, attempts: 1, status: 'waiting', error: { type: 'AuthFailed', message: 'permission denied' } }],
    lastError: { type: 'AuthFailed', message: 'permission denied' },
  };
  const setPhase = (phase: OnboardingStatus['phase']) => {
    status.phase = phase;
    upsertSearchAttributes([{ key: OnboardingPhaseKey, value: phase }]);
  };
  setPhase('needs-credentials');
  setHandler(onboardingStatusQuery, () => status);
  setHandler(
    provideCredentialsUpdate,
    (credential: SshCredential, _which?: { hop?: string }) => {
      if (typeof credential.password?.sealed !== 'string') throw ApplicationFailure.nonRetryable('credential not sealed');
      status.offeredHostKeySha256 = OFFERED_KEY;
      setPhase('needs-host-key-approval');
      return { accepted: true as const, hop: 'target' as const };
    },
    {
      validator: (_credential: SshCredential, _which?: { hop?: string }) => {
        if (status.phase !== 'needs-credentials') throw new Error('not waiting for credentials');
      },
    },
  );
  setHandler(
    approveHostKeyUpdate,
    ({ hostKeySha256 }) => {
      status.hostKeySha256 = hostKeySha256;
      status.steps[0] = { ...status.steps[0], status: 'succeeded', endedAtMs: started + 1, attempts: 2, error: undefined };
      status.tunnelId = input.hostId;
      status.lastError = undefined;
      setPhase('healthy');
      return { accepted: true as const, hop: 'target' as const };
    },
    {
      validator: ({ hostKeySha256 }) => {
        if (status.phase !== 'needs-host-key-approval') throw new Error('not waiting for a host key approval');
        if (hostKeySha256 !== status.offeredHostKeySha256) throw new Error('that is not the offered host key');
      },
    },
  );
  await condition(() => status.phase === 'healthy');
  return status;
}

/** Holds a fake forward (an activity that fails its first attempt) until stopped. */
export async function tunnelKeeper(spec: { tunnelId: string }): Promise<void> {
  let stopped = false;
  let restarts = 0;
  const status = (): TunnelStatus => ({
    tunnelId: spec.tunnelId,
    state: stopped ? 'stopped' : 'connected',
    stats: { connected: !stopped, openConnections: 0, totalConnections: 0, bytesIn: 0, bytesOut: 0, reconnects: restarts },
  });
  setHandler(tunnelStatusQuery, status);
  setHandler(restartTunnelUpdate, () => {
    restarts++;
    return { restarted: true as const };
  });
  setHandler(stopTunnelUpdate, () => {
    stopped = true;
    return { stopped: true as const };
  });
  const scope = new CancellationScope();
  const holding = scope.run(() => holdReverseForward(spec.tunnelId)).catch((err) => {
    if (!isCancellation(err)) throw err;
  });
  await condition(() => stopped);
  scope.cancel();
  await holding;
}
/** Ends the change or key rotation in flight of a fakeHostEntity. */
export const finishChangeSignal = defineSignal<[{ outcome: NonNullable<ChangeRecord['outcome']>; error?: string }]>('finishChange');

/**
 * A host entity (`host/<id>`) that is already past onboarding, in the phase the test gives it: publishes its status
 * in the memo as the real one does, and accepts changes and key rotations with the real messages and the rules the
 * API must answer 409 for (only healthy or degraded, one at a time, agentVersion only in repo mode). A change
 * stays in flight until finishChangeSignal.
 */
export async function fakeHostEntity(initial: HostStatus): Promise<HostStatus> {
  const status: HostStatus = { ...initial, changes: [...(initial.changes ?? [])] };
  let next = status.changes!.length;
  const publish = () => upsertMemo({ [STATUS_MEMO_KEY]: status });
  const inFlight = () => status.changes!.find((c) => c.endedAtMs === undefined);
  const mayChange = () => {
    if (status.phase !== 'healthy' && status.phase !== 'degraded') throw new Error(`host ${status.hostId} is ${status.phase}: only a healthy or degraded host changes`);
    const running = inFlight();
    if (running) throw new Error(`${running.kind} ${running.id} is still in progress`);
  };
  const record = (kind: ChangeRecord['kind'], change?: ChangeRecord['change']) => {
    const id = `${kind}-${++next}`;
    status.changes!.push({ id, kind, requestedAtMs: Date.now(), ...(change ? { change } : {}) });
    publish();
    return { accepted: true as const, changeId: id };
  };

  setHandler(hostStatusQuery, () => status);
  setHandler(changeHostUpdate, (change) => record('change', change), {
    validator: (change) => {
      mayChange();
      if (change.agentVersion !== undefined && (change.agentMode ?? status.agentConfig?.mode) !== 'repo') {
        throw new Error(`agentVersion needs repo mode (host ${status.hostId} installs from an artifact)`);
      }
    },
  });
  setHandler(rotateKeyUpdate, () => record('rotate-key'), { validator: mayChange });
  setHandler(finishChangeSignal, ({ outcome, error }) => {
    const running = inFlight();
    if (!running) return;
    running.endedAtMs = Date.now();
    running.outcome = outcome;
    if (error) running.error = error;
    const c = running.change;
    if (c && outcome === 'applied') {
      if (c.labels) status.labels = c.labels;
      const agent = { ...(status.agentConfig ?? { mode: 'artifact' as const }) };
      if (c.agentMode) agent.mode = c.agentMode;
      if (c.interval) agent.interval = c.interval;
      if (c.agentVersion !== undefined) agent.version = c.agentVersion || undefined;
      status.agentConfig = agent;
    }
    publish();
  });
  setHandler(offboardHostUpdate, () => {
    status.phase = 'offboarding';
    publish();
    return { accepted: true as const };
  });
  publish();
  await condition(() => status.phase === 'offboarded');
  return status;
}

export { hostLifecycle } from '../../workflows/host/host-lifecycle';
