import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { OnboardingStatus, SshCredential, SshHop, TunnelSpec, TunnelStatus } from './contracts';

// ---- onboarding (`onboard/<hostId>`) ----
export const onboardingStatusQuery = defineQuery<OnboardingStatus>('status');
/**
 * Accepted only while the phase is `needs-credentials`, with sealed secrets only; `hop` (default: the one
 * waiting) must name the server whose login was refused — the host itself or its bastion.
 */
export const provideCredentialsUpdate = defineUpdate<{ accepted: true; hop: SshHop }, [SshCredential, { hop?: SshHop }?]>('provideCredentials');
/** Accepted only while the phase is `needs-host-key-approval`; the fingerprint must be the one offered, by the hop named. */
export const approveHostKeyUpdate = defineUpdate<{ accepted: true; hop: SshHop }, [{ hostKeySha256: string; hop?: SshHop }]>('approveHostKey');

// ---- tunnel keeper (`tunnel/<tunnelId>`) ----
export const tunnelStatusQuery = defineQuery<TunnelStatus>('status');
export const stopTunnelUpdate = defineUpdate<{ stopped: true }, []>('stop');
export const restartTunnelUpdate = defineUpdate<{ restarted: true }, []>('restart');
/**
 * The keeper follows its spec: a host that re-onboarded (new forward key, new pin) hands over the new spec, and
 * the keeper restarts its forward with it when it differs. `hostId` joins the hosts that use the tunnel.
 */
export const updateTunnelSpecUpdate = defineUpdate<{ changed: boolean; hosts: number }, [{ spec: TunnelSpec; hostId?: string }]>('updateSpec');
/** A host no longer uses the tunnel; the keeper stops with its last host (keepers that count their hosts). */
export const detachTunnelHostUpdate = defineUpdate<{ remaining: number; stopping: boolean }, [{ hostId: string }]>('detachHost');

