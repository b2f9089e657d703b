import type { WorkflowStartOptions } from '@temporalio/client';
import { workflowIds, type OnboardHostInput } from '../workflows/contracts';
import { HostAddressKey, HostIdKey, OnboardingPhaseKey } from '../workflows/search-attributes';

/** The host entity's workflow type (`host/<hostId>`). */
export const HOST_WORKFLOW_TYPE = 'hostLifecycle';

// Static summary and details of an onboarding: what the Temporal UI shows without decoding payloads.
// Built from non-secret fields only.

export function onboardingSummary(input: OnboardHostInput): string {
  return `Onboard ${input.hostId} (${input.target.credential.username}@${input.target.address}:${input.target.port})`;
}

export function onboardingDetails(input: OnboardHostInput): string {
  const dp = input.dataPath;
  const path = dp.kind === 'direct' ? `direct to ${dp.influxUrl}` : dp.kind === 'tunnel' ? 'SSH remote forward on the host' : `forward on proxy ${dp.proxy.address}:${dp.proxy.port} (${dp.bindAddress})`;
  return [
    `- **host** \`${input.hostId}\` at ${input.target.address}:${input.target.port}`,
    `- **control path** ${input.target.via ? `through bastion ${input.target.via.address}:${input.target.via.port}` : 'direct SSH'}`,
    `- **data path** ${path}`,
    `- **agent** Telegraf, ${input.agent.mode} mode`,
    `- **host key** ${input.target.hostKeySha256 ? `expected ${input.target.hostKeySha256}` : 'pinned on first contact'}`,
  ].join('\n');
}

/**
 * How a host entity is started, in one place for the API (one host) and the fleets (signal-with-start): the same
 * id, queue, conflict policy, UI summary and search attributes, so a host started either way is the same host.
 */
export function hostEntityStart(input: OnboardHostInput, taskQueue: string): Pick<WorkflowStartOptions, 'workflowId' | 'taskQueue' | 'staticSummary' | 'staticDetails' | 'typedSearchAttributes'> & { workflowIdConflictPolicy: 'USE_EXISTING' } {
  return {
    workflowId: workflowIds.host(input.hostId),
    taskQueue,
    workflowIdConflictPolicy: 'USE_EXISTING',
    staticSummary: onboardingSummary(input),
    staticDetails: onboardingDetails(input),
    typedSearchAttributes: [
      { key: HostIdKey, value: input.hostId },
      { key: HostAddressKey, value: input.target.address },
      { key: OnboardingPhaseKey, value: 'onboarding' },
    ],
  };
}
