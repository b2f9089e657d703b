import type { OnboardHostInput, SshTarget } from '../contracts';
import type { FleetCorrections, FleetDefaults, FleetMember } from './messages';

/**
 * A member's onboarding input: the fleet's defaults with the member's own fields over them. Pure, so the fleet
 * workflow builds each host's input when it starts it (the fleet's own input stays small: secrets sealed once).
 */
export function memberInput(defaults: FleetDefaults, m: FleetMember): OnboardHostInput {
  const base = defaults.target;
  const via = m.via === null ? undefined : (m.via ?? base.via);
  const target: SshTarget = {
    address: m.address,
    port: m.port ?? base.port,
    credential: m.credential ?? base.credential,
    ...(m.hostKeySha256 ? { hostKeySha256: m.hostKeySha256 } : {}),
    ...(via ? { via } : {}),
  };
  const labels = m.labels ?? defaults.labels;
  return {
    hostId: m.hostId,
    target,
    dataPath: m.dataPath ?? defaults.dataPath,
    agent: m.agent ?? defaults.agent,
    ...(labels && Object.keys(labels).length > 0 ? { labels } : {}),
    ...(defaults.timing ? { timing: defaults.timing } : {}),
  };
}

/** The member with a retry's corrections applied (what it is onboarded with from now on). */
export function correctedMember(m: FleetMember, c: FleetCorrections | undefined): FleetMember {
  if (!c) return m;
  const next: FleetMember = { ...m };
  if (c.credential) next.credential = c.credential;
  if (c.port !== undefined) next.port = c.port;
  if (c.via !== undefined) next.via = c.via;
  return next;
}

/** Which corrections a retry carries, by name (for its record; never the values). */
export function correctionNames(c: FleetCorrections | undefined): string[] {
  if (!c) return [];
  return (['credential', 'port', 'via'] as const).filter((k) => c[k] !== undefined).map((k) => (k === 'via' ? 'bastion' : k));
}

/**
 * The member list as a fleet keeps it, from full inputs: each member holds only what differs from `defaults`
 * (compared as JSON: a sealed secret equal to the defaults' one is the same secret).
 */
export function compactMembers(defaults: FleetDefaults, inputs: OnboardHostInput[]): FleetMember[] {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const base = defaults.target;
  return inputs.map((i) => {
    const m: FleetMember = { hostId: i.hostId, address: i.target.address };
    if (i.target.port !== base.port) m.port = i.target.port;
    if (!same(i.target.credential, base.credential)) m.credential = i.target.credential;
    if (!same(i.target.via, base.via)) m.via = i.target.via ?? null;
    if (i.target.hostKeySha256) m.hostKeySha256 = i.target.hostKeySha256;
    if (!same(i.dataPath, defaults.dataPath)) m.dataPath = i.dataPath;
    if (!same(i.agent, defaults.agent)) m.agent = i.agent;
    if (!same(i.labels ?? {}, defaults.labels ?? {})) m.labels = i.labels ?? {};
    return m;
  });
}
