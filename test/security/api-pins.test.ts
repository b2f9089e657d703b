import { NativeConnection, Worker } from '@temporalio/worker';
import request from 'supertest';
import { bundleWorkflows } from '../../apps/worker/bundle';
import { sealSecret } from '../../lib/sealed-secret';
import { dataConverterFor } from '../../lib/temporal';
import { bearer, OPERATOR_TOKEN, startTestApp, WORKER_KEYRING, type TestApp } from '../api/harness';
import { eventually, testStack, uniqueName } from '../support/stack';

// Finding 8, second half: a host posted again after its run closed started unpinned, so trust on first use
// happened again. The API now carries the pins of the host's last run into the new one.

const KEY_HOST = 'SHA256:' + 'P'.repeat(43);
const KEY_BASTION = 'SHA256:' + 'Q'.repeat(43);

describe('finding 8: pins carry over into a host\'s later runs', () => {
  let t: TestApp;
  let connection: NativeConnection;
  let worker: Worker;
  let running: Promise<void>;
  const probes: Array<{ target?: string; via?: string }> = [];
  const http = () => request(t.app.getHttpServer());

  beforeAll(async () => {
    const taskQueue = uniqueName('sec-pins');
    t = await startTestApp(testStack().temporalAddress, { configOverrides: { onboardingTaskQueue: taskQueue }, docs: false });
    const keyring = WORKER_KEYRING;
    connection = await NativeConnection.connect({ address: testStack().temporalAddress });
    worker = await Worker.create({
      connection,
      taskQueue,
      workflowBundle: await bundleWorkflows(),
      dataConverter: dataConverterFor(keyring),
      activities: {
        probeHost: async (i: any) => {
          probes.push({ target: i.target.hostKeySha256, via: i.target.via?.hostKeySha256 });
          return {
            hostKeySha256: KEY_HOST,
            viaHostKeySha256: KEY_BASTION,
            facts: { hostname: 'h', os: 'debian', osVersion: '12', arch: 'x86_64', initSystem: 'none', python3: '3.11', cpus: 1, memoryMiB: 512, diskRootGiB: 5 },
          };
        },
        createCloudroot: async () => ({ username: 'cloudroot', publicKey: 'ssh-ed25519 AAAA', privateKey: sealSecret(keyring, 'k') }),
        installAgent: async () => ({ ok: 1, changed: 0, failed: 0, unreachable: 0, telegrafVersion: '1.39.3', agentStartedAtMs: 1, outputUrl: 'x' }),
        verifyMetrics: async () => ({ pointsSeen: 1, lastPointAtMs: 2 }),
        // Offboarding between the runs: a host entity watches until it is offboarded.
        releaseTunnel: async () => ({ remaining: 0, stopping: true }),
        uninstallAgent: async () => ({ ok: 1, changed: 1, alreadyGone: false, notes: [] }),
        removeCloudroot: async () => ({ removed: true, alreadyGone: false, verified: 'login-refused', notes: [] }),
        revokeForwardKey: async () => ({ removed: true }),
      },
    });
    running = worker.run();
  });

  afterAll(async () => {
    worker?.shutdown();
    await running;
    await connection?.close();
    await t?.close();
  });

  async function offboard(id: string): Promise<void> {
    expect((await http().delete(`/v1/hosts/${id}`).set(bearer(OPERATOR_TOKEN))).status).toBe(202);
    await eventually(async () => (await http().get(`/v1/hosts/${id}`).set(bearer(OPERATOR_TOKEN))).body.phase === 'offboarded');
  }

  async function onboardToHealthy(body: Record<string, unknown>): Promise<any> {
    const res = await http().post('/v1/hosts').set(bearer(OPERATOR_TOKEN)).send(body);
    expect(res.status).toBe(202);
    return eventually(async () => {
      const s = await http().get(`/v1/hosts/${res.body.id}`).set(bearer(OPERATOR_TOKEN));
      return s.body.phase === 'healthy' && s.body.runId === res.body.runId ? s.body : undefined;
    });
  }

  it('the second run of a host expects the keys the first one pinned, on the host and on its bastion', async () => {
    const hostId = uniqueName('pins');
    const body = {
      hostId, address: '10.213.77.5', username: 'admin', password: 'pw', dataPath: 'direct', influxUrl: 'http://10.213.0.1:8086',
      bastion: { address: '10.213.0.77', username: 'jump', password: 'jpw' },
    };
    const first = await onboardToHealthy(body);
    expect(first.hostKeySha256).toBe(KEY_HOST);
    expect(first.bastionHostKeySha256).toBe(KEY_BASTION);
    // Offboarded and posted again: a new run of the host entity, held to the keys the first one pinned.
    await offboard(hostId);
    await onboardToHealthy(body);
    expect(probes).toEqual([{ target: undefined, via: undefined }, { target: KEY_HOST, via: KEY_BASTION }]);

    // A key the operator names still decides.
    const named = 'SHA256:' + 'R'.repeat(43);
    await offboard(hostId);
    await onboardToHealthy({ ...body, expectedHostKeySha256: named });
    expect(probes.at(-1)).toEqual({ target: named, via: KEY_BASTION });
  });
});
