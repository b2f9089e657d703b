import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { reconcileScheduleId } from '../../apps/api/fleets/fleets.service';
import { fleetUnsupportedReason, type Fleet, type FleetHost } from '../fleet';
import { useE2eStack } from '../support/e2e-stack';
import { eventually } from '../support/stack';

// A fleet kept in step with an Ansible INI inventory by its reconcile Schedule, on real components: 5 hosts listed →
// 5 healthy; one removed and one added → one offboarded, one onboarded on the next pass; all removed → the pass stops
// for approval and nothing is offboarded until the plan's digest is approved.
const unsupported = fleetUnsupportedReason();
const suite = unsupported ? describe.skip : describe;
jest.setTimeout(900_000);

const INVENTORY_DIR = mkdtempSync(path.join(tmpdir(), 'ao-inventory-'));
// One bootstrap password for the whole inventory (the fleet's defaults give it; the inventory's own is never read).
const PASSWORD = 'inventory pw $(id) ✓';

suite('fleet from an Ansible inventory, reconciled', () => {
  const e2e = useE2eStack({ name: 'fleet-inv', inventory: { dirs: [INVENTORY_DIR], urlPrefixes: [] } });
  const { api } = e2e;
  let fleet: Fleet;
  let client: Client;
  beforeAll(() => {
    ({ fleet, client } = e2e);
  });

  const file = path.join(INVENTORY_DIR, 'hosts.ini');
  const writeInventory = (hosts: FleetHost[]) =>
    writeFileSync(file, `[web]\n${hosts.map((h) => `${h.name} ansible_host=${h.address} ansible_port=${h.sshPort} ansible_password=not-read-by-us ao_host_id=inv-${h.name}`).join('\n')}\n\n[all:vars]\nansible_user=${hosts[0]?.bootstrapUser ?? "root"}\n`);

  async function fleetUntil(what: (f: any) => boolean, timeoutMs = 400_000): Promise<any> {
    return eventually(async () => {
      const r = await api('GET', '/v1/fleets/inv-fleet');
      return r.status === 200 && what(r.body) ? r.body : undefined;
    }, timeoutMs, 1000);
  }
  const pass = () => client.schedule.getHandle(reconcileScheduleId('inv-fleet')).trigger();
  const hostPhase = async (id: string) => (await api('GET', `/v1/hosts/${id}`)).body?.phase;

  it('5 listed → 5 healthy; −1 +1 → one offboarded, one onboarded; all removed → held until approved', async () => {
    const hosts: FleetHost[] = [];
    for (let i = 0; i < 6; i++) hosts.push(await fleet.addHost({ name: `inv${i}`, topology: 'direct', bootstrapPassword: PASSWORD }));
    const user = hosts[0].bootstrapUser;
    const body = { name: 'inv-fleet', source: { kind: 'ansible-inventory', path: file }, reconcileEverySeconds: 3600, defaults: { username: user, password: PASSWORD, dataPath: 'tunnel' } };

    // A source outside the workers' allowlist is refused before anything starts.
    const outside = await api('POST', '/v1/fleets', { ...body, name: 'inv-outside', source: { kind: 'ansible-inventory', path: '/etc/hosts' } });
    expect({ status: outside.status, code: outside.body.code }).toEqual({ status: 400, code: 'INVENTORY_UNREADABLE' });

    writeInventory(hosts.slice(0, 5));
    const started = Date.now();
    const posted = await api('POST', '/v1/fleets', body);
    expect(posted.status).toBe(202);
    const first = await fleetUntil((f) => f.total === 5 && f.counts.healthy === 5);
    console.log(JSON.stringify({ event: '5 healthy', sec: (Date.now() - started) / 1000 }));
    expect(first.inventory).toMatchObject({ kind: 'ansible-inventory', path: file, lastApplied: { added: 5, removed: 0 } });

    // One gone, one new: the next pass (the Schedule, triggered now instead of in an hour) applies both.
    writeInventory([...hosts.slice(1, 5), hosts[5]]);
    const dry = (await api('GET', '/v1/fleets/inv-fleet/plan')).body;
    expect(dry).toMatchObject({ add: [{ hostId: 'inv-inv5' }], remove: [{ hostId: 'inv-inv0' }], unchanged: 4 });
    expect(dry.held).toBeUndefined();
    const churnAt = Date.now();
    await pass();
    await fleetUntil((f) => f.inventory?.lastApplied?.added === 1 && f.total === 5 && f.counts.healthy === 5);
    await eventually(async () => (await hostPhase('inv-inv0')) === 'offboarded', 240_000, 1000);
    console.log(JSON.stringify({ event: 'churn applied', sec: (Date.now() - churnAt) / 1000 }));
    expect(await hostPhase('inv-inv5')).toBe('healthy');

    // Everything gone from the source: more than 10% → the pass is held, nothing is offboarded.
    writeInventory([]);
    await pass();
    const held = await fleetUntil((f) => f.inventory?.held !== undefined, 120_000);
    expect(held.inventory.held).toMatchObject({ remove: 5, allowed: 1 });
    expect(held.counts.healthy).toBe(5);
    for (const h of hosts.slice(1, 6)) expect(await hostPhase(`inv-${h.name}`)).toBe('healthy');
    const wrong = await api('POST', '/v1/fleets/inv-fleet/plan/approve', { digest: 'f'.repeat(64) });
    expect(wrong.status).toBe(409);
    const approved = await api('POST', '/v1/fleets/inv-fleet/plan/approve', { digest: held.inventory.held.digest });
    expect(approved.status).toBe(200);
    expect(approved.body.remove).toHaveLength(5);
    await fleetUntil((f) => f.total === 0, 300_000);
    for (const h of hosts.slice(1, 6)) await eventually(async () => (await hostPhase(`inv-${h.name}`)) === 'offboarded', 240_000, 1000);
    expect((await api('DELETE', '/v1/fleets/inv-fleet')).status).toBe(202);
  });
});
