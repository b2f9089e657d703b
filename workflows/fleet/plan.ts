import type { FleetDefaults, FleetMember } from './messages';
import type { InventoryHost } from './source';

/**
 * What a reconcile pass would do to a fleet, from what its source lists now (pure: the dry run and the real pass
 * compute the same plan). New hosts are onboarded, hosts no longer listed are offboarded, hosts whose labels changed
 * get the change; a pass that would offboard more than the allowed share of the fleet is held for a person.
 */
export interface FleetPlan {
  /** The source read's digest: approving names it, so only the plan that was shown is applied. */
  digest: string;
  readAtMs: number;
  add: { hostId: string; address: string }[];
  remove: { hostId: string; address: string }[];
  /** Labels changed in the source (applied as a change of each host: role re-run, verified). */
  relabel: { hostId: string; labels: Record<string, string> }[];
  /** Listed hosts whose address, port, login or data path changed: not applied (offboard and list it anew). */
  unsupported: { hostId: string; why: string }[];
  unchanged: number;
  /** Source entries left out, with why (from the read, and the ones the fleet's defaults cannot serve). */
  ignored: { name: string; why: string }[];
  /** Set when the pass stopped before offboarding too much: how many it may offboard without approval. */
  held?: { allowed: number; reason: string };
}

export interface PlanOptions {
  /** Largest share of the fleet a pass offboards without approval (default 0.1). */
  maxOffboardShare: number;
}

/** Hosts a pass may offboard without approval: the share of the fleet, at least one. */
export function offboardAllowance(members: number, share: number): number {
  return Math.max(1, Math.floor(members * share));
}

/** A source's host as a fleet member: the defaults serve what the source does not say (it never gives secrets). */
export function inventoryMember(defaults: FleetDefaults, h: InventoryHost & { hostId: string }): FleetMember | { ignored: string } {
  const m: FleetMember = { hostId: h.hostId, address: h.address };
  if (h.port !== undefined && h.port !== defaults.target.port) m.port = h.port;
  if (h.username && h.username !== defaults.target.credential.username) m.credential = { ...defaults.target.credential, username: h.username };
  if (h.dataPath && h.dataPath !== defaults.dataPath.kind) {
    if (h.dataPath === 'tunnel') m.dataPath = { kind: 'tunnel' };
    else return { ignored: `dataPath ${h.dataPath} needs the fleet's defaults to give it (an InfluxDB URL or a bastion)` };
  }
  if (h.labels && Object.keys(h.labels).length > 0) m.labels = { ...(defaults.labels ?? {}), ...h.labels };
  return m;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/** Compares the fleet's members with the source's. `members` are the fleet's as they are now. */
export function planReconcile(
  members: FleetMember[],
  read: { hosts: (InventoryHost & { hostId: string })[]; ignored: { name: string; why: string }[]; digest: string; readAtMs: number },
  defaults: FleetDefaults,
  opts: PlanOptions,
): FleetPlan & { members: FleetMember[] } {
  const listed = new Map<string, FleetMember>();
  const ignored = [...read.ignored];
  for (const h of read.hosts) {
    const m = inventoryMember(defaults, h);
    if ('ignored' in m) ignored.push({ name: h.hostId, why: m.ignored });
    else if (listed.has(m.hostId)) ignored.push({ name: h.hostId, why: 'listed twice' });
    else listed.set(m.hostId, m);
  }
  const current = new Map(members.map((m) => [m.hostId, m]));
  const plan: FleetPlan & { members: FleetMember[] } = { digest: read.digest, readAtMs: read.readAtMs, add: [], remove: [], relabel: [], unsupported: [], unchanged: 0, ignored, members: [] };
  for (const [id, m] of listed) {
    const was = current.get(id);
    if (!was) {
      plan.add.push({ hostId: id, address: m.address });
      plan.members.push(m);
      continue;
    }
    const { labels: newLabels, ...rest } = m;
    const { labels: oldLabels, ...restWas } = was;
    if (!same(rest, restWas)) plan.unsupported.push({ hostId: id, why: 'its address, port, login or data path changed in the source: offboard it (remove it from the source) and list it again' });
    else if (!same(newLabels ?? defaults.labels ?? {}, oldLabels ?? defaults.labels ?? {})) plan.relabel.push({ hostId: id, labels: newLabels ?? defaults.labels ?? {} });
    else plan.unchanged++;
  }
  for (const m of members) if (!listed.has(m.hostId)) plan.remove.push({ hostId: m.hostId, address: m.address });
  const allowed = offboardAllowance(members.length, opts.maxOffboardShare);
  if (plan.remove.length > allowed) {
    plan.held = { allowed, reason: `the source no longer lists ${plan.remove.length} of ${members.length} hosts; more than ${allowed} (${Math.round(opts.maxOffboardShare * 100)}%) are offboarded only with approval` };
  }
  return plan;
}
