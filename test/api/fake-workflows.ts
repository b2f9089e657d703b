// Stand-ins for onboardHost / tunnelKeeper with the real message definitions, so the API can be tested
// against a real Temporal server without SSH hosts. Deterministic workflow code only.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { OnboardHostInput, OnboardingStatus, SshCredential, TunnelStatus } from '../../workflows/contracts';
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
export { hostLifecycle } from '../../workflows/host/host-lifecycle';
