import type { Client } from '@temporalio/client';
import { sealSecret } from '../../lib/sealed-secret';
import type { Keyring } from '../../lib/keyring';
import { workflowIds, type OnboardHostInput, type OnboardingStatus, type StepName } from '../../workflows/contracts';
import { HostAddressKey, HostIdKey, OnboardingPhaseKey } from '../../workflows/search-attributes';
import type { HandHost } from '../baseline/by-hand';

/** The product's way: one `onboard/<hostId>` workflow on the real worker, started as the API starts it. */

export function onboardInput(keyring: Keyring, h: HandHost): OnboardHostInput {
  return {
    hostId: h.hostId,
    target: { address: h.address, port: h.port, credential: { username: h.bootstrapUser, password: sealSecret(keyring, h.bootstrapPassword) } },
    dataPath: { kind: 'tunnel' },
    agent: { mode: 'artifact' },
  };
}

export async function startOnboarding(client: Client, taskQueue: string, input: OnboardHostInput) {
  return client.workflow.start('onboardHost', {
    args: [input],
    workflowId: workflowIds.onboarding(input.hostId),
    taskQueue,
    workflowIdConflictPolicy: 'USE_EXISTING',
    typedSearchAttributes: [
      { key: HostIdKey, value: input.hostId },
      { key: HostAddressKey, value: input.target.address },
      { key: OnboardingPhaseKey, value: 'probing' },
    ],
  });
}

/** Per-step durations from the workflow's own timeline (startedAtMs/endedAtMs). */
export function stepDurations(status: OnboardingStatus): Partial<Record<StepName, number>> {
  const out: Partial<Record<StepName, number>> = {};
  for (const s of status.steps) if (s.endedAtMs) out[s.step] = s.endedAtMs - s.startedAtMs;
  return out;
}

/** Tunnel keepers outlive onboarding by design: end them (their forwards close) before hosts go. */
export async function stopKeepers(client: Client, tunnelTaskQueue: string): Promise<void> {
  for await (const wf of client.workflow.list({ query: `TaskQueue='${tunnelTaskQueue}' AND ExecutionStatus='Running'` })) {
    await client.workflow.getHandle(wf.workflowId).terminate('bench over').catch(() => undefined);
  }
}
