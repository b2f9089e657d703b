import type { OnboardingPhase } from '../contracts';

/**
 * The host entity's state and its legal moves, in one place (like Teleport's `updateState` or the samples'
 * `ClusterManager`): every phase change of `host/<hostId>` goes through `HostState.moveTo`, and a move the table
 * does not allow throws — a bug a test catches, never a phase an operator is shown.
 */

export type HostPhase = OnboardingPhase | 'onboarding' | 'degraded' | 'repairing' | 'changing' | 'offboarding' | 'offboarded';

/** Why a host that was healthy is not any more; each names what the watchers saw. */
export type DegradedReason = 'NoRecentPoints' | 'TunnelDown' | 'HostKeyMismatch' | 'AgentDown' | 'HostUnreachable';

export const HOST_PHASES: readonly HostPhase[] = [
  'onboarding', 'probing', 'creating-cloudroot', 'installing-agent', 'starting-tunnel', 'verifying', 'healthy',
  'needs-credentials', 'needs-host-key-approval', 'failed', 'degraded', 'repairing', 'changing', 'offboarding', 'offboarded',
];

const ONBOARDING: readonly HostPhase[] = ['onboarding', 'probing', 'creating-cloudroot', 'installing-agent', 'starting-tunnel', 'verifying'];
const WAITING: readonly HostPhase[] = ['needs-credentials', 'needs-host-key-approval'];

/** From each phase, where a host may go. Offboarding is allowed from everywhere but the end. */
export const TRANSITIONS: Readonly<Record<HostPhase, readonly HostPhase[]>> = {
  onboarding: [...ONBOARDING, ...WAITING, 'healthy', 'failed', 'offboarding'],
  probing: [...ONBOARDING, ...WAITING, 'healthy', 'failed', 'offboarding'],
  'creating-cloudroot': [...ONBOARDING, ...WAITING, 'healthy', 'failed', 'offboarding'],
  'installing-agent': [...ONBOARDING, ...WAITING, 'healthy', 'failed', 'offboarding'],
  'starting-tunnel': [...ONBOARDING, ...WAITING, 'healthy', 'failed', 'offboarding'],
  verifying: [...ONBOARDING, ...WAITING, 'healthy', 'failed', 'offboarding'],
  // A host is degraded (with a reason) before it is repaired; a person is asked only by a repair that needs one.
  healthy: ['degraded', 'changing', 'offboarding'],
  // A person answered: back to where the host was going (an onboarding step, or a repair).
  'needs-credentials': [...ONBOARDING, 'repairing', 'needs-host-key-approval', 'failed', 'offboarding'],
  'needs-host-key-approval': [...ONBOARDING, 'repairing', 'needs-credentials', 'failed', 'offboarding'],
  failed: ['onboarding', 'offboarding'],
  degraded: ['repairing', 'healthy', 'changing', 'offboarding'],
  repairing: ['healthy', 'degraded', 'needs-host-key-approval', 'needs-credentials', 'offboarding'],
  // A change (PATCH) or a key rotation: verified → healthy; rolled back or failed → healthy or degraded, as the data says.
  changing: ['healthy', 'degraded', 'offboarding'],
  offboarding: ['offboarded'],
  offboarded: [],
};

export class IllegalTransition extends Error {
  override name = 'IllegalTransition';
  constructor(readonly from: HostPhase, readonly to: HostPhase) {
    super(`illegal host transition ${from} → ${to}`);
  }
}

export interface RepairRecord {
  atMs: number;
  reason: DegradedReason;
  action: string;
  outcome: 'repaired' | 'failed' | 'waiting';
  error?: string;
}

export interface HostStateView {
  phase: HostPhase;
  /** Set while degraded (and while repairing: what is being repaired). */
  reason?: DegradedReason;
  since: number;
  repairs: RepairRecord[];
  /** Repairs within the last hour; a host repaired again and again says so. */
  repairsLastHour: number;
  flapping: boolean;
}

/** How many repairs within an hour make a host "flapping". */
export const FLAPPING_REPAIRS_PER_HOUR = 3;
/** Repair records kept (the oldest fall off; the memo stays small). */
const MAX_REPAIRS = 20;

export class HostState {
  private current: HostPhase;
  private why: DegradedReason | undefined;
  private sinceMs: number;
  private readonly log: RepairRecord[] = [];

  constructor(initial: HostPhase, nowMs: number, private readonly onChange: (view: HostStateView) => void = () => undefined) {
    this.current = initial;
    this.sinceMs = nowMs;
  }

  /** The state a previous run handed over (continue-as-new): phase, reason, since and the repair log. */
  static restore(view: HostStateView, onChange?: (view: HostStateView) => void): HostState {
    const s = new HostState(view.phase, view.since, onChange);
    s.why = view.reason;
    s.log.push(...view.repairs.slice(-MAX_REPAIRS));
    return s;
  }

  get phase(): HostPhase {
    return this.current;
  }

  get reason(): DegradedReason | undefined {
    return this.why;
  }

  can(to: HostPhase): boolean {
    return to === this.current || TRANSITIONS[this.current].includes(to);
  }

  /** The one way the phase changes. Moving to the phase it is in only updates the reason. */
  moveTo(to: HostPhase, nowMs: number, reason?: DegradedReason): void {
    if (!this.can(to)) throw new IllegalTransition(this.current, to);
    if (to !== this.current) this.sinceMs = nowMs;
    this.current = to;
    this.why = to === 'degraded' || to === 'repairing' ? (reason ?? this.why) : undefined;
    this.onChange(this.view(nowMs));
  }

  recordRepair(record: RepairRecord): void {
    this.log.push(record);
    if (this.log.length > MAX_REPAIRS) this.log.splice(0, this.log.length - MAX_REPAIRS);
    this.onChange(this.view(record.atMs));
  }

  view(nowMs: number): HostStateView {
    const lastHour = this.log.filter((r) => r.atMs > nowMs - 3_600_000 && r.outcome !== 'waiting').length;
    return {
      phase: this.current,
      ...(this.why ? { reason: this.why } : {}),
      since: this.sinceMs,
      repairs: [...this.log],
      repairsLastHour: lastHour,
      flapping: lastHour >= FLAPPING_REPAIRS_PER_HOUR,
    };
  }
}
