import type { OnboardHostInput } from '../../../workflows/contracts';

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
