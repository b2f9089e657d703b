import type { DegradedReason, HostPhase } from '../host/state';
import type { FleetMember, FleetMemberView, FleetMembersPage, FleetStatus, MemberPhase, MemberReport } from './messages';

/**
 * The fleet's read model of its members, in one place: where each host is (as its entity last reported), how many
 * are in each phase, which wait for a slot. The fleet owns the set of ids, never a host's state: a report always
 * wins over what the book assumed (state never lies), and only newer reports count.
 */

/** Phases in which a host is onboarding and holds one of the fleet's slots. */
const ACTIVE: ReadonlySet<MemberPhase> = new Set<MemberPhase>(['onboarding', 'probing', 'creating-cloudroot', 'installing-agent', 'starting-tunnel', 'verifying']);
/** Phases a person acts on (a retry can answer needs-credentials; a key approval is per host). */
export const WAITING: ReadonlySet<MemberPhase> = new Set<MemberPhase>(['needs-credentials', 'needs-host-key-approval']);

export interface BookEntry {
  member: FleetMember;
  phase: MemberPhase;
  reason?: DegradedReason;
  error?: { type: string; message: string };
  since: number;
  /** Time of the newest report applied (older ones arriving late are ignored). */
  reportedAtMs: number;
  retries: number;
}

export class FleetBook {
  private readonly entries = new Map<string, BookEntry>();
  private readonly order: string[] = [];

  constructor(members: FleetMember[] | BookEntry[], nowMs: number) {
    for (const m of members) {
      const e: BookEntry = 'member' in m ? { ...m } : { member: m, phase: 'pending', since: nowMs, reportedAtMs: 0, retries: 0 };
      if (this.entries.has(e.member.hostId)) continue;
      this.entries.set(e.member.hostId, e);
      this.order.push(e.member.hostId);
    }
  }

  get size(): number {
    return this.order.length;
  }

  get(hostId: string): BookEntry | undefined {
    return this.entries.get(hostId);
  }

  has(hostId: string): boolean {
    return this.entries.has(hostId);
  }

  /** Members in the order they were given. */
  all(): BookEntry[] {
    return this.order.map((id) => this.entries.get(id)!);
  }

  /** A host's report; false when it is stale (older than what the book has) or about a host not in the fleet. */
  report(r: MemberReport): boolean {
    const e = this.entries.get(r.hostId);
    if (!e || r.atMs < e.reportedAtMs) return false;
    if (e.phase !== r.phase) e.since = r.atMs;
    e.phase = r.phase;
    e.reportedAtMs = r.atMs;
    e.reason = r.reason;
    e.error = r.phase === 'failed' || WAITING.has(r.phase) ? (r.error ?? e.error) : undefined;
    return true;
  }

  /** The fleet started (or retried) the host: it holds a slot until its entity says where it is. */
  started(hostId: string, nowMs: number, retry = false): void {
    const e = this.entries.get(hostId);
    if (!e) return;
    e.phase = 'onboarding';
    e.since = nowMs;
    // Reports from before this moment describe the run before it: the next one counts.
    e.reportedAtMs = nowMs;
    e.error = undefined;
    e.reason = undefined;
    if (retry) e.retries++;
  }

  /** The member with corrected inputs (a retry with corrections). */
  replaceMember(m: FleetMember): void {
    const e = this.entries.get(m.hostId);
    if (e) e.member = m;
  }

  add(m: FleetMember, nowMs: number): void {
    if (this.entries.has(m.hostId)) return;
    this.entries.set(m.hostId, { member: m, phase: 'pending', since: nowMs, reportedAtMs: 0, retries: 0 });
    this.order.push(m.hostId);
  }

  remove(hostId: string): void {
    if (!this.entries.delete(hostId)) return;
    this.order.splice(this.order.indexOf(hostId), 1);
  }

  active(): number {
    let n = 0;
    for (const e of this.entries.values()) if (ACTIVE.has(e.phase)) n++;
    return n;
  }

  /** The next members to start, in order, so that no more than `concurrency` onboard at once. */
  nextToStart(concurrency: number): FleetMember[] {
    const free = concurrency - this.active();
    if (free <= 0) return [];
    const out: FleetMember[] = [];
    for (const id of this.order) {
      const e = this.entries.get(id)!;
      if (e.phase === 'pending') out.push(e.member);
      if (out.length >= free) break;
    }
    return out;
  }

  /** No member is pending or onboarding: each is where it stays without the fleet (healthy, failed, waiting, …). */
  settled(): boolean {
    for (const e of this.entries.values()) if (e.phase === 'pending' || ACTIVE.has(e.phase)) return false;
    return true;
  }

  /** Members a retry picks: failed or waiting for credentials (or the given ids, if they are in one of those). */
  retryable(hostIds?: string[], phases: MemberPhase[] = ['failed', 'needs-credentials']): BookEntry[] {
    const ids = hostIds ? new Set(hostIds) : undefined;
    return this.all().filter((e) => phases.includes(e.phase) && (!ids || ids.has(e.member.hostId)));
  }

  counts(): { counts: FleetStatus['counts']; failures: Record<string, number> } {
    const counts: FleetStatus['counts'] = {};
    const failures: Record<string, number> = {};
    for (const e of this.entries.values()) {
      counts[e.phase] = (counts[e.phase] ?? 0) + 1;
      if (e.phase === 'failed') {
        const t = e.error?.type ?? 'Failed';
        failures[t] = (failures[t] ?? 0) + 1;
      }
    }
    return { counts, failures };
  }

  page(opts: { phase?: MemberPhase; offset?: number; limit?: number }): FleetMembersPage {
    const all = this.all().filter((e) => !opts.phase || e.phase === opts.phase);
    const offset = Math.max(0, Math.floor(opts.offset ?? 0));
    const limit = Math.min(500, Math.max(1, Math.floor(opts.limit ?? 100)));
    const items: FleetMemberView[] = all.slice(offset, offset + limit).map((e) => ({
      hostId: e.member.hostId,
      address: e.member.address,
      phase: e.phase,
      ...(e.reason ? { reason: e.reason } : {}),
      ...(e.error ? { error: { ...e.error } } : {}),
      since: e.since,
      retries: e.retries,
    }));
    return { items, total: all.length, ...(offset + limit < all.length ? { next: offset + limit } : {}) };
  }

  /** What a continued run needs (continue-as-new). */
  snapshot(): BookEntry[] {
    return this.all().map((e) => ({ ...e }));
  }
}

export type { HostPhase };
