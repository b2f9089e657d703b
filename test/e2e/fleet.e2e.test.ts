import type { Client } from '@temporalio/client';
import { workflowIds } from '../../workflows/contracts';
import { fleetUnsupportedReason, type Fleet, type FleetHost } from '../fleet';
import { useE2eStack } from '../support/e2e-stack';
import { eventually } from '../support/stack';
import { summarizeHostPoints } from '../../activities/metrics/influx-query';

// A fleet from one request, on real components: 12 hosts (direct and tunnel data paths), 2 of them posted with a
// wrong password and 1 unreachable. The fleet settles at 9 healthy / 2 needs-credentials / 1 failed HostUnreachable;
// one retry with the corrected password makes 11 healthy, and the 9 run nothing again.
const unsupported = fleetUnsupportedReason();
const suite = unsupported ? describe.skip : describe;
jest.setTimeout(900_000);

const SHARED_PASSWORD = 'Fleet pw $(id) `x` ✓';
const OTHER_PASSWORD = 'the-other-one';

suite('fleets end to end (12 hosts, retry with corrections)', () => {
  const e2e = useE2eStack({ name: 'fleet-e2e' });
  const { api } = e2e;
  let fleet: Fleet;
  let client: Client;
  beforeAll(() => {
    ({ fleet, client } = e2e);
  });

  async function fleetUntil(id: string, what: (f: any) => boolean, timeoutMs = 600_000): Promise<any> {
    return eventually(async () => {
      const r = await api('GET', `/v1/fleets/${id}`);
      return r.status === 200 && what(r.body) ? r.body : undefined;
    }, timeoutMs, 1000);
  }

  /** How often each host's onboarding ran and what its steps did: the proof that a host ran nothing again. */
  async function runsOf(hostId: string): Promise<{ onboardingRuns: number; steps: string }> {
    let onboardingRuns = 0;
    for await (const _ of client.workflow.list({ query: `WorkflowId = '${workflowIds.onboarding(hostId)}'` })) onboardingRuns++;
    const h = (await api('GET', `/v1/hosts/${hostId}`)).body;
    return { onboardingRuns, steps: h.steps.map((s: any) => `${s.step}:${s.status}:${s.attempts}`).join(' ') };
  }

  it('12 hosts → 9 healthy, 2 needs-credentials, 1 HostUnreachable; retry with the corrected password → 11 healthy, the 9 untouched', async () => {
    const influxTarget = (() => {
      const u = new URL(e2e.config.influx.url);
      return { host: u.hostname, port: Number(u.port) };
    })();
    const made: { h: FleetHost; kind: 'direct' | 'tunnel' | 'wrong-pw' | 'unreachable' }[] = [];
    const add = async (i: number, kind: (typeof made)[number]['kind']) => {
      const topology = kind === 'tunnel' ? 'direct' : 'reachable-influx';
      const h = await fleet.addHost({ name: `fl${i}`, topology, ...(topology === 'reachable-influx' ? { influxTarget } : {}), bootstrapPassword: kind === 'wrong-pw' ? OTHER_PASSWORD : SHARED_PASSWORD });
      made.push({ h, kind });
    };
    const kinds: (typeof made)[number]['kind'][] = ['direct', 'direct', 'direct', 'direct', 'direct', 'direct', 'tunnel', 'tunnel', 'tunnel', 'wrong-pw', 'wrong-pw', 'unreachable'];
    for (let i = 0; i < kinds.length; i++) await add(i, kinds[i]);
    const unreachable = made.find((m) => m.kind === 'unreachable')!.h;
    await fleet.setLinkDown(unreachable, true);

    const body = {
      name: 'e2e-fleet',
      concurrency: 6,
      unreachableAfterSeconds: 30,
      defaults: { username: made[0].h.bootstrapUser, password: SHARED_PASSWORD, dataPath: 'direct', labels: { env: 'e2e-fleet' } },
      hosts: made.map(({ h, kind }) => ({
        hostId: `fleet-${h.name}`,
        address: h.address,
        port: h.sshPort,
        ...(kind === 'tunnel' ? { dataPath: 'tunnel' } : { influxUrl: h.influxUrl }),
        labels: { kind },
      })),
    };
    const started = Date.now();
    const posted = await api('POST', '/v1/fleets', body);
    expect(posted.status).toBe(202);
    expect(posted.body).toMatchObject({ id: 'e2e-fleet', workflowId: 'fleet/e2e-fleet', hosts: 12 });
    // Posting the same fleet again is the same fleet.
    expect((await api('POST', '/v1/fleets', body)).body.runId).toBe(posted.body.runId);

    const first = await fleetUntil('e2e-fleet', (f) => f.state === 'settled');
    console.log(JSON.stringify({ event: 'fleet settled', sec: (Date.now() - started) / 1000, counts: first.counts }));
    expect(first.counts).toEqual({ healthy: 9, 'needs-credentials': 2, failed: 1 });
    expect(first.failures).toEqual({ HostUnreachable: 1 });
    const waiting = (await api('GET', '/v1/fleets/e2e-fleet/hosts?phase=needs-credentials')).body;
    expect(waiting.items.map((m: any) => m.hostId).sort()).toEqual(made.filter((m) => m.kind === 'wrong-pw').map((m) => `fleet-${m.h.name}`).sort());
    const failed = (await api('GET', '/v1/fleets/e2e-fleet/hosts?phase=failed')).body;
    expect(failed.items).toEqual([expect.objectContaining({ hostId: `fleet-${unreachable.name}`, error: expect.objectContaining({ type: 'HostUnreachable' }) })]);
    const page = (await api('GET', '/v1/fleets/e2e-fleet/hosts?pageSize=5')).body;
    expect(page).toMatchObject({ total: 12, nextOffset: 5 });
    expect(page.items).toHaveLength(5);

    // Every healthy host's own points, tagged with its id and the fleet's labels, are in InfluxDB.
    const healthy = made.filter((m) => m.kind === 'direct' || m.kind === 'tunnel').map((m) => `fleet-${m.h.name}`);
    for (const id of healthy) expect((await summarizeHostPoints(e2e.config.influx, id, started, { env: 'e2e-fleet' })).count).toBeGreaterThan(0);
    const before = new Map<string, Awaited<ReturnType<typeof runsOf>>>();
    for (const id of healthy) before.set(id, await runsOf(id));

    // Retry: the corrected password for the waiting two (the unreachable one tries again and fails again).
    const retried = await api('POST', '/v1/fleets/e2e-fleet/retry', { credential: { username: made[0].h.bootstrapUser, password: OTHER_PASSWORD } });
    expect(retried.status).toBe(202);
    expect(retried.body).toMatchObject({ accepted: true, hosts: 3 });
    const retryAt = Date.now();
    const second = await fleetUntil('e2e-fleet', (f) => f.state === 'settled' && f.retries[0]?.endedAtMs && (f.counts.healthy ?? 0) + (f.counts.failed ?? 0) === 12);
    console.log(JSON.stringify({ event: 'retry settled', sec: (Date.now() - retryAt) / 1000, counts: second.counts }));
    expect(second.counts).toEqual({ healthy: 11, failed: 1 });
    expect(second.retries[0]).toMatchObject({ hosts: 3, corrected: ['credential'] });

    // The 9 ran nothing again: one onboarding run each, the same steps with the same attempts.
    for (const id of healthy) expect({ id, ...(await runsOf(id)) }).toEqual({ id, ...before.get(id)! });
    // The two that waited went on in the same run (probe attempt 2 with the new password), and their points arrive.
    for (const m of made.filter((x) => x.kind === 'wrong-pw')) {
      const id = `fleet-${m.h.name}`;
      const r = await runsOf(id);
      expect(r.onboardingRuns).toBe(1);
      expect(r.steps.split(' ')[0]).toBe('probe:succeeded:2');
      expect((await summarizeHostPoints(e2e.config.influx, id, retryAt)).count).toBeGreaterThan(0);
    }
    const gone = (await api('GET', `/v1/hosts/fleet-${unreachable.name}`)).body;
    expect(gone).toMatchObject({ phase: 'failed', lastError: expect.objectContaining({ type: 'HostUnreachable' }), onboardingRetries: 1 });

    // Closing the fleet keeps its hosts monitored (offboard=true would offboard them).
    expect((await api('DELETE', '/v1/fleets/e2e-fleet')).status).toBe(202);
    await fleetUntil('e2e-fleet', (f) => f.state === 'closed', 120_000);
    expect((await api('GET', `/v1/hosts/${healthy[0]}`)).body.phase).toBe('healthy');
  });
});
