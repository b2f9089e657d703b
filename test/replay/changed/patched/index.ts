// The same change as ../unpatched done safely, as docs/workflow-evolution.md describes: behind patched(), so
// runs recorded before it replay the old path and only new runs take the new step.
import { patched, proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../../../../activities';
import type { OnboardHostInput, OnboardingStatus } from '../../../../workflows/contracts';
import { onboardHost as current } from '../../../../workflows/onboard-host';

const { workerInfo } = proxyActivities<ReturnType<typeof createActivities>>({ startToCloseTimeout: '10 seconds' });

export async function onboardHost(input: OnboardHostInput): Promise<OnboardingStatus> {
  if (patched('preflight-worker-info')) await workerInfo();
  return current(input);
}
