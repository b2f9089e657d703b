import type { Client } from '@temporalio/client';
import { ensureFreshnessSchedule } from '../../apps/worker/freshness-schedule';
import { summarizeHostPoints } from '../../activities/metrics/influx-query';
import type { WorkerConfig } from '../../lib/config';
import { fleetUnsupportedReason, type Fleet, type FleetHost } from '../fleet';
import { useE2eStack } from '../support/e2e-stack';
import { eventually, uniqueName } from '../support/stack';

// The host stays monitored, on real components: the fleet-wide freshness sweep (a real Schedule every 5 s) notices a
// host whose agent died, the host entity degrades it with a name and repairs it by itself; offboarding leaves
// nothing on the host (tunnel and proxy paths) and nothing new arrives in InfluxDB.
const unsupported = fleetUnsupportedReason();
const suite = unsupported ? describe.skip : describe;

const SWEEP_MS = 5_000;
// Telegraf flushes every 10 s: a host is stale after two missed flushes and a bit.
const STALE_AFTER_MS = 25_000;
jest.setTimeout(600_000);

suite('host lifecycle end to end (sweep, repair, offboard)', () => {
  const scheduleId = uniqueName('sweep');
  // Declared before the stack, so it runs while the stack's client is still connected.
  afterAll(async () => {
    await e2e.client?.schedule.getHandle(scheduleId).delete().catch(() => undefined);
  });
  const e2e = useE2eStack({ name: 'lifecycle-e2e' });
  const { api, login } = e2e;
  let fleet: Fleet;
  let client: Client;
  let config: WorkerConfig;
  beforeAll(async () => {
    ({ fleet, client, config } = e2e);
    await ensureFreshnessSchedule(client, { taskQueue: config.temporal.onboardingTaskQueue, everyMs: SWEEP_MS, staleAfterMs: STALE_AFTER_MS, scheduleId });
  });

  async function until(id: string, what: (h: any) => boolean, timeoutMs = 240_000): Promise<any> {
    return eventually(async () => {
      const r = await api('GET', `/v1/hosts/${id}`);
      return r.status === 200 && what(r.body) ? r.body : undefined;
    }, timeoutMs, 500);
  }

  async function onboard(body: Record<string, unknown>): Promise<any> {
    const r = await api('POST', '/v1/hosts', body);
    expect(r.status).toBe(202);
    return until(r.body.id, (h) => {
      if (h.phase === 'failed') throw Object.assign(new Error(`onboarding failed: ${JSON.stringify(h.lastError)}`), { fatal: true });
      return h.phase === 'healthy';
    });
  }

  /** Everything the role and cloudroot put on a host, as a list of what is still there. */
  async function leftovers(h: FleetHost): Promise<string[]> {
    const r = await fleet.exec(h, [
      'getent passwd cloudroot >/dev/null && echo user',
      'test -e /etc/sudoers.d/90-cloudroot && echo sudoers',
      'test -e /home/cloudroot && echo home',
      'pgrep -x telegraf >/dev/null && echo telegraf-process',
      'pgrep -f "[t]elegraf-supervisor" >/dev/null && echo supervisor-process',
      'test -e /usr/local/bin/telegraf && echo binary',
      'test -e /etc/telegraf && echo config',
      'test -e /etc/default/telegraf && echo env-file',
      'test -e /etc/ssh/sshd_config.d/50-agent-onboarding.conf && echo sshd-dropin',
      'true',
    ].join('; '));
    return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  }

  async function pointsSince(hostId: string, sinceMs: number): Promise<number> {
    return (await summarizeHostPoints(config.influx, hostId, sinceMs)).count;
  }

  it('agent killed on a healthy host → degraded/NoRecentPoints by the sweep → repaired by itself; then offboarded clean', async () => {
    const host = await fleet.addHost({ name: 'life', topology: 'direct' });
    const id = 'life-tunnel';
    await onboard({ hostId: id, ...login(host), dataPath: 'tunnel' });
    // The sweep has seen it fresh (the host entity records what the sweep told it).
    await until(id, (h) => typeof h.lastPointAtMs === 'number', 60_000).catch(async (e) => {
      for await (const wf of client.workflow.list({ query: `WorkflowType='freshnessSweep'` })) {
        const h = client.workflow.getHandle(wf.workflowId, wf.runId);
        console.log('sweep run', wf.workflowId, wf.status.name, JSON.stringify(await h.result().catch((x) => String(x?.cause?.message ?? x))));
      }
      console.log('host status', JSON.stringify((await api('GET', `/v1/hosts/${id}`)).body).slice(0, 600));
      throw e;
    });

    // Kill the agent and its supervisor: nothing on the host brings it back.
    await fleet.exec(host, 'pkill -KILL -f "[t]elegraf-supervisor"; pkill -KILL -x telegraf; true');
    const killedAt = Date.now();
    const degraded = await until(id, (h) => h.phase === 'degraded' || h.phase === 'repairing', STALE_AFTER_MS + 4 * SWEEP_MS + 30_000);
    expect(degraded.reason).toBe('NoRecentPoints');
    console.log(JSON.stringify({ event: 'degraded', afterKillSec: (Date.now() - killedAt) / 1000 }));
    const repaired = await until(id, (h) => h.phase === 'healthy' && h.repairs.some((r: any) => r.outcome === 'repaired'), 180_000);
    console.log(JSON.stringify({ event: 'repaired', afterKillSec: (Date.now() - killedAt) / 1000, repairs: repaired.repairs }));
    expect(repaired.repairs.at(-1)).toMatchObject({ reason: 'NoRecentPoints', outcome: 'repaired' });
    expect((await fleet.exec(host, 'pgrep -c -x telegraf')).stdout.trim()).toBe('1');

    // Offboard: nothing of ours is left on the host, the forward is gone, InfluxDB hears nothing new.
    expect((await api('DELETE', `/v1/hosts/${id}`)).status).toBe(202);
    const gone = await until(id, (h) => h.phase === 'offboarded', 180_000);
    expect(gone.notCleaned).toEqual([]);
    expect(await leftovers(host)).toEqual([]);
    expect((await fleet.exec(host, "ss -Hltn 'sport = :18086'")).stdout.trim()).toBe('');
    const after = Date.now();
    await new Promise((r) => setTimeout(r, 15_000));
    expect(await pointsSince(id, after)).toBe(0);
    // Offboarded is final; a second DELETE is a conflict, and a POST onboards afresh (not done here).
    expect((await api('DELETE', `/v1/hosts/${id}`)).status).toBeGreaterThanOrEqual(400);
  });

  it('proxy path: offboarding removes the host and, with its last host, the proxy forward and its key', async () => {
    const bastion = await fleet.addHost({ name: 'lbast', topology: 'bastion' });
    const priv = await fleet.addHost({ name: 'lpriv', topology: 'private', bastion });
    const id = 'life-proxy';
    const healthy = await onboard({ hostId: id, ...login(priv), bastion: login(bastion), dataPath: 'proxy' });
    expect((await fleet.exec(bastion, 'ss -Hltn')).stdout).toContain(`${priv.proxyAddress}:18086`);

    expect((await api('DELETE', `/v1/hosts/${id}`)).status).toBe(202);
    const gone = await until(id, (h) => h.phase === 'offboarded', 180_000);
    expect(gone.notCleaned).toEqual([]);
    expect(await leftovers(priv)).toEqual([]);
    expect((await fleet.exec(bastion, 'ss -Hltn')).stdout).not.toContain(':18086');
    const keys = (await fleet.exec(bastion, `cat ~${bastion.bootstrapUser}/.ssh/authorized_keys 2>/dev/null; true`)).stdout;
    expect(keys).not.toContain(`agent-onboarding-forward:${healthy.tunnelId}`);
  });
});
