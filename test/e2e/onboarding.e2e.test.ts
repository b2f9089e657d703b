import type { Client } from '@temporalio/client';
import type { WorkerConfig } from '../../lib/config';
import { fleetUnsupportedReason, type Fleet, type FleetHost } from '../fleet';
import { eventually } from '../support/stack';
import { useE2eStack } from '../support/e2e-stack';
import { summarizeHostPoints } from '../../activities/metrics/influx-query';
import { findSecretsInHistory } from '../support/history-secrets';

// The mission end to end, through the HTTP API: real Temporal, real sshd hosts, real ansible-playbook,
// real Telegraf writing (directly or through SSH forwards) into a real InfluxDB.
const unsupported = fleetUnsupportedReason();
const suite = unsupported ? describe.skip : describe;
if (unsupported) console.warn(`e2e skipped: ${unsupported}`);

jest.setTimeout(360_000);
const PASSWORD = `Pa'ss "w$(id)\`x\`; ü ✓`;

suite('onboarding end to end (fleet + API + worker)', () => {
  /** Hosts whose host key the worker swaps right after cloudroot (between bootstrap and install). */
  const swapKeyAfterCloudroot = new Map<string, FleetHost>();
  const workflowIds: string[] = [];
  const e2e = useE2eStack({
    name: 'e2e',
    wrapActivities: (stack) => (real) => ({
      ...real,
      createCloudroot: async (input: Parameters<typeof real.createCloudroot>[0]) => {
        const result = await real.createCloudroot(input);
        const host = swapKeyAfterCloudroot.get(input.hostId);
        if (host) await stack.fleet.regenerateHostKeys(host);
        return result;
      },
    }),
  });
  const { api, keyring } = e2e;
  let fleet: Fleet;
  let client: Client;
  let config: WorkerConfig;
  beforeAll(() => {
    ({ fleet, client, config } = e2e);
  });

  const login = (h: FleetHost, password = h.bootstrapPassword) => ({ address: h.address, port: h.sshPort, username: h.bootstrapUser, password });

  async function waitForPhase(id: string, phases: string[], timeoutMs = 240_000): Promise<any> {
    return eventually(async () => {
      const r = await api('GET', `/v1/hosts/${id}`);
      if (r.status !== 200) return undefined;
      if (r.body.phase === 'failed' && !phases.includes('failed')) {
        throw Object.assign(new Error(`onboarding ${id} failed: ${JSON.stringify(r.body.lastError)}`), { fatal: true });
      }
      return phases.includes(r.body.phase) ? r.body : undefined;
    }, timeoutMs, 500).catch((e) => {
      throw e;
    });
  }

  async function onboard(body: Record<string, unknown>): Promise<string> {
    const r = await api('POST', '/v1/hosts', body);
    expect(r.status).toBe(202);
    workflowIds.push(r.body.workflowId);
    return r.body.id;
  }

  async function expectPointsInInflux(hostId: string): Promise<void> {
    const summary = await eventually(async () => {
      const s = await summarizeHostPoints(config.influx, hostId, Date.now() - 10 * 60_000);
      return s.count > 0 ? s : undefined;
    }, 30_000);
    expect(summary.count).toBeGreaterThan(0);
  }

  it('onboards a host of each topology to healthy, and the points are in InfluxDB', async () => {
    const direct = await fleet.addHost({ name: 'direct', topology: 'direct', bootstrapPassword: PASSWORD, sshPort: 2222 });
    const bastion = await fleet.addHost({ name: 'bastion', topology: 'bastion' });
    const priv = await fleet.addHost({ name: 'private', topology: 'private', bastion });
    const reach = await fleet.addHost({ name: 'reach', topology: 'reachable-influx', influxTarget: hostPort(config.influx.url) });

    const ids = await Promise.all([
      onboard({ hostId: 'e2e-direct', ...login(direct), dataPath: 'tunnel' }),
      onboard({ hostId: 'e2e-private', ...login(priv), bastion: login(bastion), dataPath: 'proxy', proxyBindAddress: priv.proxyAddress }),
      onboard({ hostId: 'e2e-reach', ...login(reach), dataPath: 'direct', influxUrl: reach.influxUrl }),
    ]);
    const done = await Promise.all(ids.map((id) => waitForPhase(id, ['healthy'])));
    for (const host of done) {
      expect(host.steps.map((s: any) => s.step)).toEqual(
        host.id === 'e2e-reach' ? ['probe', 'cloudroot', 'install-agent', 'verify'] : ['probe', 'cloudroot', 'forward-key', 'install-agent', 'tunnel', 'verify'],
      );
      expect(host.verified.pointsSeen).toBeGreaterThan(0);
      expect(host.hostKeySha256).toMatch(/^SHA256:/);
    }
    expect(done[0].hostKeySha256).toBe(await fleet.hostKeySha256(direct));
    for (const id of ids) await expectPointsInInflux(id);
    // The host with a tunnel really cannot reach InfluxDB itself: its data came through the forward.
    const probe = await fleet.exec(direct, `python3 -c "import socket; socket.create_connection(('${hostPort(config.influx.url).host}', ${hostPort(config.influx.url).port}), 2)"`);
    expect(probe.exitCode).not.toBe(0);

    // The list filter finds them.
    const list = await eventually(async () => {
      const r = await api('GET', '/v1/hosts?phase=healthy');
      return ids.every((id) => r.body?.items?.some((h: any) => h.id === id)) ? r.body : undefined;
    }, 20_000);
    expect(list.items.length).toBeGreaterThanOrEqual(3);

    // Posting the same host again (while healthy) joins its host entity: the same run, nothing new on the host.
    const again = await api('POST', '/v1/hosts', { hostId: 'e2e-reach', ...login(reach), dataPath: 'direct', influxUrl: reach.influxUrl });
    expect(again.status).toBe(202);
    expect(again.body.runId).toBe(done[2].runId);
    const users = await fleet.exec(reach, 'grep -c "^cloudroot:" /etc/passwd; pgrep -c -x telegraf');
    expect(users.stdout.trim().split('\n')).toEqual(['1', '1']);
  });

  it('wrong password → needs-credentials; the right one resumes the same run to healthy', async () => {
    const host = await fleet.addHost({ name: 'wrongpw', topology: 'reachable-influx', influxTarget: hostPort(config.influx.url) });
    const id = await onboard({ hostId: 'e2e-wrongpw', ...login(host, 'not-the-password'), dataPath: 'direct', influxUrl: host.influxUrl });
    const parked = await waitForPhase(id, ['needs-credentials'], 60_000);
    expect(parked.lastError.type).toBe('AuthFailed');
    const runId = parked.runId;
    const answer = await api('POST', `/v1/hosts/${id}/credentials`, { username: host.bootstrapUser, password: host.bootstrapPassword });
    expect(answer.status).toBeLessThan(300);
    const healthy = await waitForPhase(id, ['healthy']);
    expect(healthy.runId).toBe(runId);
    // Credentials for a host that is no longer waiting for them: 409.
    expect((await api('POST', `/v1/hosts/${id}/credentials`, { username: 'x', password: 'y' })).status).toBe(409);
  });

  it('host key swapped between bootstrap and install → HostKeyMismatch, nothing installed', async () => {
    const host = await fleet.addHost({ name: 'swap', topology: 'reachable-influx', influxTarget: hostPort(config.influx.url) });
    swapKeyAfterCloudroot.set('e2e-swap', host);
    const id = await onboard({ hostId: 'e2e-swap', ...login(host), dataPath: 'direct', influxUrl: host.influxUrl });
    const parked = await waitForPhase(id, ['needs-host-key-approval'], 120_000);
    expect(parked.lastError.type).toBe('HostKeyMismatch');
    expect(parked.offeredHostKeySha256).toBe(await fleet.hostKeySha256(host));
    expect(parked.offeredHostKeySha256).not.toBe(parked.hostKeySha256);
    const installed = await fleet.exec(host, 'test -e /usr/local/bin/telegraf || test -e /etc/telegraf/telegraf.conf');
    expect(installed.exitCode).not.toBe(0);
    // An operator approves the new key: the same run continues to healthy.
    expect((await api('POST', `/v1/hosts/${id}/host-key/approve`, { hostKeySha256: parked.offeredHostKeySha256 })).status).toBeLessThan(300);
    await waitForPhase(id, ['healthy']);
  });

  it('exported histories hold neither bootstrap passwords nor private keys', async () => {
    expect(workflowIds.length).toBeGreaterThan(0);
    const histories = await Promise.all(workflowIds.map((wid) => client.workflow.getHandle(wid).fetchHistory()));
    const needles = [PASSWORD, ...fleet.hosts.map((h) => h.bootstrapPassword)];
    const hits = await findSecretsInHistory(histories, needles, keyring);
    expect(hits).toEqual([]);
  });
});

function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
}
