import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { DATA_PATH_KINDS, type InventoryHost, type InventoryRead } from '../../workflows/fleet/source';
import { HOST_ID_PATTERN, HOSTNAME_PATTERN, USERNAME_PATTERN, hasTemplateSyntax, labelsProblem } from '../../workflows/input-rules';
import { inventoryUnreadable } from './failures';

/**
 * Every host a source lists passes here before anything else sees it: the same rules as the API's
 * (workflows/input-rules.ts), because these values travel the same way into workflow ids, Ansible, Telegraf's TOML
 * and shell commands on hosts. A bad entry is left out with a reason; it never fails the read (one typo in a
 * thousand-host inventory must not stop the other 999). Reasons never quote the value.
 */

/** A host entry as a source gave it, before any check. `name` says where it came from and is safe to show. */
export interface RawHost {
  name: string;
  address: unknown;
  port?: unknown;
  hostId?: unknown;
  username?: unknown;
  labels?: unknown;
  dataPath?: unknown;
  /** Set by the source when it already knows the entry is unusable (e.g. unknown fields). */
  problem?: string;
}

/** Above this many entries a read fails: the result is one activity payload (Temporal limits it to ~2 MiB). */
export const MAX_INVENTORY_ENTRIES = 5_000;
/** `ignored` lists this many entries; one more entry counts the rest. */
export const MAX_IGNORED_LISTED = 100;
/** What duplicate detection assumes for a host without a port (SSH's): `h` and `h:22` are one host. */
const DEFAULT_SSH_PORT = 22;

const SAFE_NAME = /^[A-Za-z0-9._:@-]{1,128}$/;

/** `s` when it is safe to show in `ignored` (and logs), else null. */
export function safeName(s: unknown): string | null {
  return typeof s === 'string' && SAFE_NAME.test(s) && !hasTemplateSyntax(s) ? s : null;
}

/** An IP address or a DNS name, canonical (IPv6 compressed, names lower case without the final dot); else null. */
export function canonicalAddress(value: unknown): string | null {
  if (typeof value !== 'string' || value.length === 0 || value.length > 253 || value.includes('%')) return null;
  const family = isIP(value);
  if (family === 4) return value;
  if (family === 6) return new URL(`http://[${value}]/`).hostname.slice(1, -1);
  if (!HOSTNAME_PATTERN.test(value) || /^[0-9.]+$/.test(value)) return null;
  return value.toLowerCase().replace(/\.$/, '');
}

/** Integer ports, also as the decimal strings INI inventories and hand-written YAML produce. */
function portOf(value: unknown): number | null {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^[0-9]{1,5}$/.test(value) ? Number(value) : NaN;
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? n : null;
}

type Checked = { host: InventoryHost } | { why: string };

function check(raw: RawHost): Checked {
  if (raw.problem) return { why: raw.problem };
  const address = canonicalAddress(raw.address);
  if (address === null) return { why: 'address must be an IP address or a DNS name' };
  const host: InventoryHost = { address };
  if (raw.port !== undefined) {
    const port = portOf(raw.port);
    if (port === null) return { why: 'port must be an integer from 1 to 65535' };
    host.port = port;
  }
  if (raw.hostId !== undefined) {
    if (typeof raw.hostId !== 'string' || !HOST_ID_PATTERN.test(raw.hostId)) return { why: `hostId must match ${HOST_ID_PATTERN}` };
    host.hostId = raw.hostId;
  }
  if (raw.username !== undefined) {
    if (typeof raw.username !== 'string' || !USERNAME_PATTERN.test(raw.username)) return { why: `username must match ${USERNAME_PATTERN}` };
    host.username = raw.username;
  }
  if (raw.labels !== undefined) {
    if (typeof raw.labels !== 'object' || raw.labels === null || Array.isArray(raw.labels)) return { why: 'labels must be a map of strings' };
    const problem = labelsProblem(raw.labels as Record<string, unknown>);
    if (problem) return { why: `labels ${problem}` };
    const labels: Record<string, string> = {};
    for (const k of Object.keys(raw.labels).sort()) labels[k] = (raw.labels as Record<string, string>)[k];
    host.labels = labels;
  }
  if (raw.dataPath !== undefined) {
    if (!DATA_PATH_KINDS.includes(raw.dataPath as never)) return { why: `dataPath must be one of ${DATA_PATH_KINDS.join(', ')}` };
    host.dataPath = raw.dataPath as InventoryHost['dataPath'];
  }
  return { host };
}

function compareHosts(a: InventoryHost, b: InventoryHost): number {
  const cmp = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  return cmp(a.address, b.address) || (a.port ?? DEFAULT_SSH_PORT) - (b.port ?? DEFAULT_SSH_PORT) || cmp(a.hostId ?? '', b.hostId ?? '');
}

/** Fields in one order, absent ones left out: the same hosts always serialize (and digest) the same. */
function canonical(h: InventoryHost): InventoryHost {
  const out: InventoryHost = { address: h.address };
  if (h.port !== undefined) out.port = h.port;
  if (h.hostId !== undefined) out.hostId = h.hostId;
  if (h.username !== undefined) out.username = h.username;
  if (h.labels !== undefined) out.labels = h.labels;
  if (h.dataPath !== undefined) out.dataPath = h.dataPath;
  return out;
}

/** sha256 (hex) of the canonical host list. */
export function digestOf(hosts: InventoryHost[]): string {
  return createHash('sha256').update(JSON.stringify([...hosts].map(canonical).sort(compareHosts))).digest('hex');
}

/** Checks every entry, drops duplicates (the later one: address:port, or host id), sorts, digests. */
export function normalizeHosts(entries: RawHost[], readAtMs: number): InventoryRead {
  if (entries.length > MAX_INVENTORY_ENTRIES) {
    throw inventoryUnreadable(`the source lists ${entries.length} hosts, more than the ${MAX_INVENTORY_ENTRIES} one read can carry`);
  }
  const hosts: InventoryHost[] = [];
  const ignored: InventoryRead['ignored'] = [];
  const byEndpoint = new Map<string, string>();
  const byHostId = new Map<string, string>();
  for (const raw of entries) {
    const checked = check(raw);
    if ('why' in checked) {
      ignored.push({ name: raw.name, why: checked.why });
      continue;
    }
    const { host } = checked;
    const endpoint = `${host.address}|${host.port ?? DEFAULT_SSH_PORT}`;
    const sameEndpoint = byEndpoint.get(endpoint);
    if (sameEndpoint !== undefined) {
      ignored.push({ name: raw.name, why: `same address and port as ${sameEndpoint}, listed earlier` });
      continue;
    }
    const sameId = host.hostId !== undefined ? byHostId.get(host.hostId) : undefined;
    if (sameId !== undefined) {
      ignored.push({ name: raw.name, why: `same hostId as ${sameId}, listed earlier` });
      continue;
    }
    byEndpoint.set(endpoint, raw.name);
    if (host.hostId !== undefined) byHostId.set(host.hostId, raw.name);
    hosts.push(canonical(host));
  }
  hosts.sort(compareHosts);
  const listed = ignored.slice(0, MAX_IGNORED_LISTED);
  if (ignored.length > listed.length) listed.push({ name: '…', why: `${ignored.length - listed.length} more entries ignored` });
  return { hosts, ignored: listed, readAtMs, digest: digestOf(hosts) };
}
