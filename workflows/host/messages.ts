import type { OnboardingPhase, OnboardingStatus, SshHop, SshTarget, TunnelSpec } from '../contracts';
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

/** The host entity's status: its state, the onboarding's status, what could not be cleaned when offboarded. */
export interface HostStatus extends HostStateView {
  hostId: string;
  address: string;
  onboarding?: OnboardingStatus;
  lastPointAtMs?: number | null;
  notCleaned?: string[];
}
export const hostStatusQuery = defineQuery<HostStatus>('hostStatus');
/** Offboard: stop watching, undo every step (cancelling an onboarding in flight first), end `offboarded`. */
export const offboardHostUpdate = defineUpdate<{ accepted: true }, []>('offboard');
/** A host whose repair met a changed host key waits for this (the onboarding child has its own while onboarding). */
export const approveRepairHostKeyUpdate = defineUpdate<{ accepted: true }, [{ hostKeySha256: string; hop?: SshHop }]>('approveRepairHostKey');
