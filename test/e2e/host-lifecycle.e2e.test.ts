import type { Client } from '@temporalio/client';
import { ensureFreshnessSchedule } from '../../apps/worker/freshness-schedule';
import { summarizeHostPoints } from '../../activities/metrics/influx-query';
import { workflowIds } from '../../workflows/contracts';
import { stopTunnelUpdate } from '../../workflows/messages';
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

  async function pointsSince(hostId: string, sinceMs: number, tags: Record<string, string> = {}): Promise<number> {
    return (await summarizeHostPoints(config.influx, hostId, sinceMs, tags)).count;
  }

  /** cloudroot's login keys (forward-only lines apart): what a rotation must change. */
  async function cloudrootLoginKeys(h: FleetHost): Promise<string[]> {
    const r = await fleet.exec(h, 'cat /home/cloudroot/.ssh/authorized_keys');
    return r.stdout.split('\n').filter((l) => l.trim() && !l.includes('agent-onboarding-forward:'));
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
    // The agent check over SSH found it dead and started it: no role run was needed.
    expect(repaired.repairs.at(-1).action).toContain('check the agent: started Telegraf');
    expect(repaired.agentHealth).toMatchObject({ running: true, restarted: true });
    expect((await fleet.exec(host, 'pgrep -c -x telegraf')).stdout.trim()).toBe('1');

    // PATCH: new labels reach Telegraf and are verified in InfluxDB before the change counts.
    const patched = await api('PATCH', `/v1/hosts/${id}`, { labels: { env: 'e2e-changed', team: 'sre' } });
    expect(patched.status).toBe(202);
    const changedAt = Date.now();
    const applied = await until(id, (h) => h.changes?.some((c: any) => c.id === patched.body.changeId && c.outcome), 240_000);
    expect(applied.changes.at(-1)).toMatchObject({ outcome: 'applied' });
    expect(applied.labels).toEqual({ env: 'e2e-changed', team: 'sre' });
    expect(await pointsSince(id, changedAt - 5_000, { env: 'e2e-changed', team: 'sre' })).toBeGreaterThan(0);
    console.log(JSON.stringify({ event: 'change applied', sec: (Date.now() - changedAt) / 1000 }));

    // Rotate: a new cloudroot key, the old one gone from the host; everything after uses the new one.
    const keysBefore = await cloudrootLoginKeys(host);
    expect(keysBefore).toHaveLength(1);
    const rotate = await api('POST', `/v1/hosts/${id}/rotate-key`);
    expect(rotate.status).toBe(202);
    const rotated = await until(id, (h) => h.phase === 'healthy' && h.changes?.some((c: any) => c.id === rotate.body.changeId && c.outcome), 120_000);
    expect(rotated.changes.at(-1)).toMatchObject({ kind: 'rotate-key', outcome: 'applied' });
    const keysAfter = await cloudrootLoginKeys(host);
    expect(keysAfter).toHaveLength(1);
    expect(keysAfter[0]).not.toEqual(keysBefore[0]);

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

  it('host keys regenerated: the keeper is refused → degraded/HostKeyMismatch → needs-host-key-approval → approved → healthy with the new pin; a stopped keeper is restarted', async () => {
    const host = await fleet.addHost({ name: 'lifekey', topology: 'direct' });
    const id = 'life-hostkey';
    const healthy = await onboard({ hostId: id, ...login(host), dataPath: 'tunnel' });
    const oldKey = healthy.hostKeySha256;
    await until(id, (h) => h.tunnelReport?.state === 'connected' || typeof h.lastPointAtMs === 'number', 60_000);

    // A blip: the forward's session dies and the keeper is back within seconds; the host stays healthy.
    await fleet.killSshSessions(host, 'cloudroot');
    const blip = await until(id, (h) => h.tunnelReport?.state === 'connected' && h.tunnelReport.since > Date.now() - 60_000, 60_000);
    expect(blip.phase).toBe('healthy');

    // New host keys, and the sessions that still hold the old ones cut: the keeper's reconnect is refused.
    await fleet.regenerateHostKeys(host);
    const newKey = await fleet.hostKeySha256(host);
    expect(newKey).not.toBe(oldKey);
    const cutAt = Date.now();
    await fleet.killSshSessions(host, 'cloudroot');
    const refused = await until(id, (h) => h.reason === 'HostKeyMismatch' || h.phase === 'needs-host-key-approval', 60_000);
    console.log(JSON.stringify({ event: 'host key mismatch seen', sec: (Date.now() - cutAt) / 1000, phase: refused.phase }));
    const waiting = await until(id, (h) => h.phase === 'needs-host-key-approval', 120_000);
    expect(waiting).toMatchObject({ waitingOn: 'target', offeredHostKeySha256: newKey });
    expect(waiting.tunnelReport).toMatchObject({ state: 'refused', error: { type: 'HostKeyMismatch' } });

    // A wrong key is refused; the offered one is approved and the host repairs itself with it on every login.
    const wrong = await api('POST', `/v1/hosts/${id}/host-key/approve`, { hostKeySha256: oldKey });
    expect(wrong.status).toBe(409);
    expect((await api('POST', `/v1/hosts/${id}/host-key/approve`, { hostKeySha256: newKey })).status).toBe(200);
    const approvedAt = Date.now();
    const repaired = await until(id, (h) => h.phase === 'healthy' && h.repairs.some((r: any) => r.outcome === 'repaired' && r.reason === 'HostKeyMismatch'), 180_000);
    console.log(JSON.stringify({ event: 'repaired after approval', sec: (Date.now() - approvedAt) / 1000 }));
    expect(repaired.hostKeySha256).toBe(newKey);
    expect(repaired.tunnelReport?.state).toBe('connected');
    expect(await pointsSince(id, approvedAt)).toBeGreaterThan(0);

    // The keeper stopped and its session killed: nothing holds the forward; the sweep sees the gap and the host
    // starts a new keeper (with the new pin) by itself.
    await client.workflow.getHandle(workflowIds.tunnel(healthy.tunnelId)).executeUpdate(stopTunnelUpdate);
    await fleet.killSshSessions(host, 'cloudroot');
    const stoppedAt = Date.now();
    const healed = await until(
      id,
      (h) => h.phase === 'healthy' && h.repairs.filter((r: any) => r.outcome === 'repaired').length >= 2,
      STALE_AFTER_MS + 4 * SWEEP_MS + 180_000,
    );
    console.log(JSON.stringify({ event: 'keeper stopped → repaired', sec: (Date.now() - stoppedAt) / 1000, repair: healed.repairs.at(-1) }));
    expect(healed.repairs.at(-1)).toMatchObject({ outcome: 'repaired' });
    expect((await fleet.exec(host, "ss -Hltn 'sport = :18086'")).stdout.trim()).not.toBe('');

    // Someone removed cloudroot's login key and the agent died: the repair's login is refused → needs-credentials;
    // the bootstrap login recreates cloudroot with a new key and the repair goes on.
    await fleet.exec(host, "sed -i '/agent-onboarding-forward:/!d' /home/cloudroot/.ssh/authorized_keys; pkill -KILL -f '[t]elegraf-supervisor'; pkill -KILL -x telegraf; true");
    const askedAt = Date.now();
    const asking = await until(id, (h) => h.phase === 'needs-credentials', STALE_AFTER_MS + 4 * SWEEP_MS + 120_000);
    expect(asking.waitingOn).toBe('target');
    expect(asking.repairs.slice(-2)).toMatchObject([
      { outcome: 'failed', error: expect.stringContaining('AuthFailed') },
      { outcome: 'waiting', action: expect.stringContaining("wait for the target's login") },
    ]);
    const { address: _a, port: _p, ...bootstrap } = login(host);
    expect((await api('POST', `/v1/hosts/${id}/credentials`, bootstrap)).status).toBe(200);
    const recreated = await until(id, (h) => h.phase === 'healthy' && h.repairs.filter((r: any) => r.outcome === 'repaired').length >= 3, 180_000);
    console.log(JSON.stringify({ event: 'cloudroot recreated → repaired', sec: (Date.now() - askedAt) / 1000, repair: recreated.repairs.at(-1) }));
    expect(await cloudrootLoginKeys(host)).toHaveLength(1);

    expect((await api('DELETE', `/v1/hosts/${id}`)).status).toBe(202);
    const gone = await until(id, (h) => h.phase === 'offboarded', 180_000);
    expect(gone.notCleaned).toEqual([]);
    expect(await leftovers(host)).toEqual([]);
  });
});
