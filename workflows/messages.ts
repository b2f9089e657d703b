import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { OnboardingStatus, SshCredential, TunnelStatus } from './contracts';

// ---- onboarding (`onboard/<hostId>`) ----
export const onboardingStatusQuery = defineQuery<OnboardingStatus>('status');
/** Accepted only while the phase is `needs-credentials`; the validator rejects otherwise. */
export const provideCredentialsUpdate = defineUpdate<{ accepted: true }, [SshCredential]>('provideCredentials');
/** Accepted only while the phase is `needs-host-key-approval`; the fingerprint must be the one offered. */
export const approveHostKeyUpdate = defineUpdate<{ accepted: true }, [{ hostKeySha256: string }]>('approveHostKey');

// ---- tunnel keeper (`tunnel/<tunnelId>`) ----
export const tunnelStatusQuery = defineQuery<TunnelStatus>('status');
export const stopTunnelUpdate = defineUpdate<{ stopped: true }, []>('stop');
export const restartTunnelUpdate = defineUpdate<{ restarted: true }, []>('restart');
