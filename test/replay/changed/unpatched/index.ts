// A deliberately INCOMPATIBLE next version of onboardHost, for replay.test.ts: it adds an activity call in
// front of the existing steps without a patch, so every recorded onboarding must fail to replay with it.
import { proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../../../../activities';
import type { OnboardHostInput, OnboardingStatus } from '../../../../workflows/contracts';
import { onboardHost as current } from '../../../../workflows/onboard-host';

const { workerInfo } = proxyActivities<ReturnType<typeof createActivities>>({ startToCloseTimeout: '10 seconds' });

export async function onboardHost(input: OnboardHostInput): Promise<OnboardingStatus> {
  await workerInfo(); // new "pre-flight" step: a command the old histories do not have
  return current(input);
}
