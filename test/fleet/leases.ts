import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FleetError } from './errors';
import { isAlive, ProcessIdentity, selfIdentity } from './proc';

/**
 * Address and interface-name leases shared by every fleet on this machine (parallel jest workers each run one):
 * a lease is a file created with O_EXCL, so two fleets never configure the same subnet or root-side veth name.
 *   link N -> 10.213.0.0/17 split in /30s: gateway (root ns) 10.213.x.(4N+1), host .(4N+2), veth `aof<N>`
 *   lan  N -> 10.213.(128+N).0/24: a bastion's private network (bastion .1, private hosts .2-.254)
 */
export type LeaseKind = 'link' | 'lan';

const SLOTS: Record<LeaseKind, number> = { link: 8192, lan: 128 };

export interface LeaseRecord {
  kind: LeaseKind;
  index: number;
  owner: ProcessIdentity;
  runId: string;
}

export interface Lease extends LeaseRecord {
  file: string;
}

export function leaseDir(): string {
  return path.join(os.tmpdir(), 'ao-fleet.leases');
}

function leaseFile(kind: LeaseKind, index: number): string {
  return path.join(leaseDir(), `${kind}-${index}.json`);
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Takes a free slot (a random start spreads parallel fleets apart). Slots of dead owners are left to cleanupStale. */
export function acquireLease(kind: LeaseKind, runId: string): Lease {
  fs.mkdirSync(leaseDir(), { recursive: true, mode: 0o700 });
  const slots = SLOTS[kind];
  const start = Math.floor(Math.random() * slots);
  for (let i = 0; i < slots; i++) {
    const index = (start + i) % slots;
    const file = leaseFile(kind, index);
    const record: LeaseRecord = { kind, index, owner: selfIdentity(), runId };
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw e;
    }
    try {
      fs.writeSync(fd, JSON.stringify(record));
    } finally {
      fs.closeSync(fd);
    }
    return { ...record, file };
  }
  throw new FleetError(`no free ${kind} lease in ${leaseDir()} (${slots} slots in use); run the fleet cleanup`);
}

export function releaseLease(lease: Pick<Lease, 'file'>): void {
  fs.rmSync(lease.file, { force: true });
}

/** Leases whose owner process is gone (a crashed run); a lease still being written (empty file) counts as live. */
export function staleLeases(): Lease[] {
  let names: string[];
  try {
    names = fs.readdirSync(leaseDir());
  } catch {
    return [];
  }
  const out: Lease[] = [];
  for (const n of names) {
    if (!/^(link|lan)-\d+\.json$/.test(n)) continue;
    const file = path.join(leaseDir(), n);
    const rec = readJson<LeaseRecord>(file);
    if (!rec?.owner) continue;
    if (!isAlive(rec.owner)) out.push({ ...rec, file });
  }
  return out;
}

function ipv4(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

const BASE = (10 << 24) | (213 << 16);

export function linkAddresses(index: number): { gateway: string; host: string; prefix: number; ifname: string } {
  const net = BASE + index * 4;
  return { gateway: ipv4(net + 1), host: ipv4(net + 2), prefix: 30, ifname: `aof${index}` };
}

export function lanAddresses(index: number): { bastion: string; hostAt: (slot: number) => string; prefix: number } {
  const net = BASE + ((128 + index) << 8);
  return {
    bastion: ipv4(net + 1),
    hostAt: (slot: number) => {
      if (slot < 0 || slot > 252) throw new FleetError('a bastion network holds at most 253 private hosts');
      return ipv4(net + 2 + slot);
    },
    prefix: 24,
  };
}
