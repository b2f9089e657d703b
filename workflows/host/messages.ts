import type { AgentHealth, AgentOptions, OnboardHostInput, OnboardingPhase, OnboardingStatus, SshCredential, SshHop, SshTarget, TunnelSpec } from '../contracts';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { HostStateView } from './state';

// ---- host entity (`host/<hostId>`): what the fleet-wide watchers tell a host ----

/** Freshness of a host's points as the fleet-wide sweep saw them; sent only when it changed. */
export interface FreshnessReport {
  fresh: boolean;
  /** Newest point tagged with this host's id, ms since epoch; null when none within the sweep's window. */
  lastPointAtMs: number | null;
  sweptAtMs: number;
}
export const hostFreshnessSignal = defineSignal<[FreshnessReport]>('freshness');


/**
 * What a tunnel keeper tells the hosts it carries, on a change only: its forward is up, it went down (and is
 * retrying), or the server refused it (changed host key, refused login: the keeper waits for a new spec).
 */
export interface TunnelReport {
  tunnelId: string;
  state: 'connected' | 'down' | 'refused';
  atMs: number;
  error?: { type: string; message: string };
  /** refused with HostKeyMismatch: the key the tunnel's SSH server offered. */
  offered?: string;
}
export const tunnelReportSignal = defineSignal<[TunnelReport]>('tunnelReport');

/** What the host keeps after onboarding to repair and offboard: the cloudroot login and the tunnel, all sealed. */
export interface ServiceAccess {
  /** The cloudroot login (key credential, pinned host key, the bastion hop if any). */
  target: SshTarget;
  tunnel?: Omit<TunnelSpec, 'target'>;
}

/** The onboarding child tells its host entity each phase (and, once they exist, the service login and tunnel). */
export interface OnboardingProgress {
  phase: OnboardingPhase;
  service?: ServiceAccess;
}
export const onboardingProgressSignal = defineSignal<[OnboardingProgress]>('onboardingProgress');

/** A change of a healthy host's agent: labels (replace all), interval, install mode, package version. */
export interface HostChange {
  labels?: Record<string, string>;
  interval?: string;
  agentMode?: AgentOptions['mode'];
  /** repo mode: the Telegraf package version to pin; "" unpins (newest). */
  agentVersion?: string;
}

/** One change or key rotation as the host records it (newest last; the oldest fall off). */
export interface ChangeRecord {
  id: string;
  kind: 'change' | 'rotate-key';
  requestedAtMs: number;
  change?: HostChange;
  endedAtMs?: number;
  /** applied: verified; rolled-back: verification failed and the previous config is back; failed: neither. */
  outcome?: 'applied' | 'rolled-back' | 'failed';
  error?: string;
}

/** The host entity's status: its state, the onboarding's status, what could not be cleaned when offboarded. */
export interface HostStatus extends HostStateView {
  hostId: string;
  address: string;
  onboarding?: OnboardingStatus;
  lastPointAtMs?: number | null;
  notCleaned?: string[];
  /** The last thing its tunnel keeper reported. */
  tunnel?: { tunnelId: string; state: TunnelReport['state']; since: number; error?: { type: string; message: string } };
  /** The last agent check over SSH (a repair rung). */
  agentHealth?: AgentHealth;
  /** needs-host-key-approval during a repair: which hop offered which key. */
  waitingOn?: SshHop;
  offeredHostKeySha256?: string;
  /** The agent options and labels in force now (changed by PATCH); `onboarding.agent` is the install summary. */
  agentConfig?: AgentOptions;
  labels?: Record<string, string>;
  changes?: ChangeRecord[];
  /** The fleets this host reports its phases to. */
  fleets?: string[];
  /** How many times a failed onboarding was retried. */
  onboardingRetries?: number;
}
export const hostStatusQuery = defineQuery<HostStatus>('hostStatus');
/** Offboard: stop watching, undo every step (cancelling an onboarding in flight first), end `offboarded`. */
export const offboardHostUpdate = defineUpdate<{ accepted: true }, []>('offboard');
/**
 * A repair whose login was refused (cloudroot's key no longer accepted, or the bastion's login) waits for this:
 * for the host, a bootstrap login (sealed) that recreates cloudroot with a new key; for the bastion, its new login.
 */
export const provideRepairCredentialsUpdate = defineUpdate<{ accepted: true; hop: SshHop }, [SshCredential, { hop?: SshHop }?]>('provideRepairCredentials');
/** Change the agent of a healthy (or degraded) host: re-run the role, verify, roll back when verification fails. */
export const changeHostUpdate = defineUpdate<{ accepted: true; changeId: string }, [HostChange]>('change');
/** Give cloudroot a new key; the old one is removed only after the new one is proven. */
export const rotateKeyUpdate = defineUpdate<{ accepted: true; changeId: string }, []>('rotateKey');
/** A host whose repair met a changed host key waits for this (the onboarding child has its own while onboarding). */
export const approveRepairHostKeyUpdate = defineUpdate<{ accepted: true }, [{ hostKeySha256: string; hop?: SshHop }]>('approveRepairHostKey');
/**
 * A failed onboarding goes again, with this (possibly corrected) input: from its failed step when the service login
 * exists and the host is where it was; from the probe otherwise. Fleets retry their failed hosts with it.
 */
export const retryOnboardingUpdate = defineUpdate<{ accepted: true; resumed: boolean }, [OnboardHostInput]>('retryOnboarding');
