import type { Client } from '@temporalio/client';
import { sealSecret } from '../../lib/sealed-secret';
import type { Keyring } from '../../lib/keyring';
import { STATUS_MEMO_KEY, workflowIds, type OnboardHostInput, type OnboardingStatus, type StepName } from '../../workflows/contracts';
import { compactMembers } from '../../workflows/fleet/members';
import type { FleetStatus } from '../../workflows/fleet/messages';
import type { HostStatus } from '../../workflows/host/messages';
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

/**
 * The product's fleet way: ONE `onboardFleet` request for all hosts (each its own `host/<id>` entity, `concurrency`
 * at once), as `POST /v1/fleets` starts it. Resolves when the fleet has settled, with each host's time to healthy.
 */
export async function runFleet(client: Client, taskQueue: string, fleetId: string, inputs: OnboardHostInput[], concurrency: number, t0: number): Promise<{ doneAtMs: number[]; counts: Record<string, number> }> {
  const { hostId: _id, ...first } = inputs[0];
  const defaults = { ...first, target: { ...first.target, address: '' } };
  const members = compactMembers(defaults, inputs);
  const handle = await client.workflow.start('onboardFleet', { args: [{ fleetId, defaults, members, concurrency }], workflowId: workflowIds.fleet(fleetId), taskQueue, workflowIdConflictPolicy: 'TERMINATE_EXISTING' });
  for (;;) {
    const memo = (await handle.describe()).memo?.[STATUS_MEMO_KEY] as FleetStatus | undefined;
    if (memo?.state === 'settled') {
      const doneAtMs: number[] = [];
      for (const i of inputs) {
        const s = (await client.workflow.getHandle(workflowIds.host(i.hostId)).describe()).memo?.[STATUS_MEMO_KEY] as HostStatus | undefined;
        doneAtMs.push(s?.phase === 'healthy' ? s.since - t0 : NaN);
      }
      await handle.terminate('bench over').catch(() => undefined);
      // In the order of `inputs` (NaN: not healthy).
      return { doneAtMs, counts: memo.counts as Record<string, number> };
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Host entities outlive onboarding by design (they watch): end them before their hosts go. */
export async function stopHostEntities(client: Client, taskQueue: string): Promise<void> {
  for await (const wf of client.workflow.list({ query: `TaskQueue='${taskQueue}' AND ExecutionStatus='Running'` })) {
    await client.workflow.getHandle(wf.workflowId).terminate('bench over').catch(() => undefined);
  }
}
