import type { OnboardHostInput, SshCredential, SshTarget } from '../contracts';
import type { HostPhase, DegradedReason } from '../host/state';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { FleetPlan } from './plan';
import type { FleetSource, InventoryHost } from './source';

// ---- fleets (`fleet/<fleetId>`): a named set of host ids; their state stays in their own `host/<id>` entities ----

/**
 * What every member shares: one host's onboarding input without its id and address (the address is ''). Secrets in
 * it are sealed once for the whole fleet; a member lists only what differs.
 */
export type FleetDefaults = Omit<OnboardHostInput, 'hostId'>;

/** One member as the fleet keeps it: its id and address, and only the fields that differ from the defaults. */
export interface FleetMember {
  hostId: string;
  address: string;
  port?: number;
  credential?: SshCredential;
  /** The member's own bastion; `null`: none although the defaults name one. */
  via?: SshTarget | null;
  hostKeySha256?: string;
  dataPath?: OnboardHostInput['dataPath'];
  agent?: OnboardHostInput['agent'];
  /** The member's labels, all of them (not merged with the defaults' at read time: merged when the fleet was built). */
  labels?: Record<string, string>;
}

export interface FleetInput {
  fleetId: string;
  defaults: FleetDefaults;
  members: FleetMember[];
  /** Hosts onboarding at once (probing … verifying); the others wait their turn. */
  concurrency: number;
  /** Where the members come from, when a reconcile Schedule keeps them in step with a source. */
  source?: FleetSource;
  /** Largest share of the fleet a reconcile pass offboards without approval (default 0.1). */
  maxOffboardShare?: number;
}

/** A source read as reconcile hands it to its fleet: every host with its id (given, or derived as the API does). */
export interface FleetSourceRead {
  hosts: (InventoryHost & { hostId: string })[];
  ignored: { name: string; why: string }[];
  readAtMs: number;
  digest: string;
}

/** A reconcile pass tells the fleet what its source lists now (or that it could not read it). */
export interface FleetInventoryReport {
  read?: FleetSourceRead;
  error?: { type: string; message: string };
  /** Only compute the plan (GET …/plan). */
  dryRun?: boolean;
}
/** The plan the pass computed (applied unless a dry run or held for approval). */
export const fleetInventoryUpdate = defineUpdate<FleetPlan | { error: string }, [FleetInventoryReport]>('fleetInventory');
/** Apply the held plan whose digest is given (shown by GET …/plan or the status). */
export const approveFleetPlanUpdate = defineUpdate<{ accepted: true; plan: FleetPlan }, [{ digest: string }]>('approveFleetPlan');

/** What the status says about the source. */
export interface FleetSourceStatus {
  kind: FleetSource['kind'];
  /** The source itself (no secrets: paths and URLs only) and the port its hosts default to. */
  spec?: FleetSource;
  defaultPort?: number;
  lastReadAtMs?: number;
  lastDigest?: string;
  lastError?: { type: string; message: string; atMs: number };
  /** The last applied pass: what it did, in counts. */
  lastApplied?: { atMs: number; added: number; removed: number; relabeled: number; unsupported: number; ignored: number };
  /** A pass held for approval: what it would offboard. */
  held?: { digest: string; remove: number; allowed: number; reason: string; atMs: number };
}

/** Where a member is, as the fleet last heard it. `pending`: not started yet (waiting for a slot). */
export type MemberPhase = HostPhase | 'pending';

/** What a host entity tells each fleet it belongs to, on every phase change (and once when it joins). */
export interface MemberReport {
  hostId: string;
  phase: HostPhase;
  reason?: DegradedReason;
  /** The named failure of a failed onboarding (or what a waiting host waits on). */
  error?: { type: string; message: string };
  atMs: number;
}
export const fleetMemberSignal = defineSignal<[MemberReport]>('fleetMember');

/** A fleet (re)joins a host: the host reports to it from now on, starting with where it is. */
export interface FleetSubscription {
  fleetId: string;
}
export const fleetSubscribeSignal = defineSignal<[FleetSubscription]>('fleetSubscribe');
/** The fleet no longer tracks the host (the fleet was closed): the host stops reporting to it. */
export const fleetUnsubscribeSignal = defineSignal<[FleetSubscription]>('fleetUnsubscribe');

/** Corrected inputs for the hosts a retry picks (each optional; a credential is sealed like any other). */
export interface FleetCorrections {
  credential?: SshCredential;
  port?: number;
  /** A bastion for the control path; `null` removes the defaults' one. */
  via?: SshTarget | null;
}

/** Retry what failed or waits for a person: failed hosts from their failed step, needs-credentials with a new login. */
export interface FleetRetryRequest {
  /** Default: every member that failed or waits for credentials. */
  hostIds?: string[];
  phases?: ('failed' | 'needs-credentials')[];
  corrections?: FleetCorrections;
}
export interface FleetRetryAccepted {
  accepted: true;
  retryId: string;
  /** The hosts this retry picked (it runs in the background; their phases show the outcome). */
  hosts: number;
}
export const retryFleetUpdate = defineUpdate<FleetRetryAccepted, [FleetRetryRequest]>('retryFleet');

/** Stop tracking the members (they stay monitored unless `offboard`), end the fleet. */
export const closeFleetUpdate = defineUpdate<{ accepted: true }, [{ offboard?: boolean }]>('closeFleet');

/** One retry as the fleet records it. */
export interface FleetRetryRecord {
  id: string;
  requestedAtMs: number;
  hosts: number;
  corrected: string[];
  /** Hosts the retry could not be handed to, with why (the host's own validator said no, or it was gone). */
  refused?: { hostId: string; why: string }[];
  endedAtMs?: number;
}

/** The fleet's status: counts per phase (the memo holds this; the members page is a query). */
export interface FleetStatus {
  fleetId: string;
  state: 'running' | 'settled' | 'closing' | 'closed';
  total: number;
  counts: Partial<Record<MemberPhase, number>>;
  /** Hosts onboarding now / allowed at once. */
  active: number;
  concurrency: number;
  startedAtMs: number;
  /** When every member last reached a phase it stays in without the fleet (healthy, failed, waiting for a person). */
  settledAtMs?: number;
  retries: FleetRetryRecord[];
  /** Named failures among failed members, with how many each. */
  failures: Record<string, number>;
  source?: FleetSourceStatus;
}
export const fleetStatusQuery = defineQuery<FleetStatus>('fleetStatus');

export interface FleetMemberView {
  hostId: string;
  address: string;
  phase: MemberPhase;
  reason?: DegradedReason;
  error?: { type: string; message: string };
  since: number;
  /** How many times the fleet retried this host. */
  retries: number;
}
export interface FleetMembersPage {
  items: FleetMemberView[];
  total: number;
  /** Offset of the next page, when there is one. */
  next?: number;
}
export const fleetMembersQuery = defineQuery<FleetMembersPage, [{ phase?: MemberPhase; offset?: number; limit?: number }]>('fleetMembers');
