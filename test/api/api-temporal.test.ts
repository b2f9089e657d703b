import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeArrayFromPayloads } from '@temporalio/common/lib/internal-non-workflow';
import { NativeConnection, Worker } from '@temporalio/worker';
import request from 'supertest';
import { ensureToolchain } from '../../apps/devstack/toolchain';
import { freePort } from '../../apps/devstack/processes';
import { startTemporalDevServer, type TemporalDevServer } from '../../apps/devstack/services';
import { dataConverterFor } from '../../lib/temporal';
import { workflowIds, type OnboardHostInput } from '../../workflows/contracts';
import type { HostStatus } from '../../workflows/host/messages';
import { TunnelIdKey } from '../../workflows/search-attributes';
import { eventually, uniqueName } from '../support/stack';
import '../support/quiet-runtime';
import { fakeActivities } from './fake-activities';
import { fakeHostEntity, finishChangeSignal, OFFERED_KEY } from './fake-workflows';
import { bearer, OPERATOR_TOKEN, startTestApp, VIEWER_TOKEN, WORKER_KEYRING, type TestApp } from './harness';

// The API against a real Temporal dev server (the jest globalSetup's, or our own when run without it)
// and a worker running stand-in workflows that use the real message definitions.

const PASSWORD = 'Api-Test-Passw0rd-Plaintext';

describe('API against Temporal', () => {
  let devServer: TemporalDevServer | undefined;
  let address: string;
  let taskQueue: string;
  let t: TestApp;
  let workerConnection: NativeConnection;
  let worker: Worker;
  let running: Promise<void>;
  const http = () => request(t.app.getHttpServer());
  const op = bearer(OPERATOR_TOKEN);
  const viewer = bearer(VIEWER_TOKEN);

  beforeAll(async () => {
    address = process.env.TEMPORAL_ADDRESS ?? '';
    if (!address) {
      devServer = await startTemporalDevServer({
        binary: ensureToolchain().temporal,
        dataDir: mkdtempSync(path.join(os.tmpdir(), 'ao-api-test-')),
        port: await freePort(),
      });
      address = devServer.address;
    }
    taskQueue = uniqueName('api-onboarding');
    t = await startTestApp(address, {
      configOverrides: { onboardingTaskQueue: taskQueue },
      timeouts: { rpcMs: 10_000, queryMs: 10_000, updateMs: 20_000 },
      docs: false,
    });
    workerConnection = await NativeConnection.connect({ address });
    worker = await Worker.create({
      connection: workerConnection,
      taskQueue,
      workflowsPath: require.resolve('./fake-workflows'),
      activities: fakeActivities,
      dataConverter: dataConverterFor(WORKER_KEYRING),
    });
    running = worker.run();
  });

  afterAll(async () => {
    worker?.shutdown();
    await running?.catch(() => undefined);
    await workerConnection?.close();
    await t?.close();
    await devServer?.stop();
  });

  it('is ready when Temporal answers', async () => {
    const res = await http().get('/readyz');
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('ready');
  });

  it('onboards a host through credentials and host-key approval', async () => {
    const hostId = uniqueName('h').toLowerCase();
    const tunnel = await t.client.workflow.start('tunnelKeeper', {
      args: [{ tunnelId: hostId }],
      taskQueue,
      workflowId: workflowIds.tunnel(hostId),
      typedSearchAttributes: [{ key: TunnelIdKey, value: hostId }],
    });

    const body = { hostId, address: '10.213.7.9', username: 'admin', password: PASSWORD, labels: { env: 'test' } };
    const first = await http().post('/v1/hosts').set(op).send(body);
    expect(first.status).toBe(202);
    expect(first.body).toEqual({ id: hostId, workflowId: `host/${hostId}`, runId: expect.any(String), statusUrl: `/v1/hosts/${hostId}` });
    expect(first.headers.location).toBe(`/v1/hosts/${hostId}`);

    // Same host again: the same onboarding, not a second one.
    const again = await http().post('/v1/hosts').set(op).send({ ...body, password: 'another-one' });
    expect(again.status).toBe(202);
    expect(again.body.runId).toBe(first.body.runId);

    // The input is in history sealed: neither the raw history nor its decoded input holds the password.
    const handle = t.client.workflow.getHandle(`host/${hostId}`);
    // The Temporal UI shows a summary and details without decoding anything; no secret in them.
    const described = await handle.describe();
    expect(await described.staticSummary()).toBe(`Onboard ${hostId} (admin@10.213.7.9:22)`);
    const details = await described.staticDetails();
    expect(details).toContain('SSH remote forward on the host');
    expect(details).not.toContain(PASSWORD);
    const history = await handle.fetchHistory();
    expect(JSON.stringify(history)).not.toContain(PASSWORD);
    const [input] = (await decodeArrayFromPayloads(
      t.client.options.loadedDataConverter,
      history.events?.[0].workflowExecutionStartedEventAttributes?.input?.payloads,
    )) as [OnboardHostInput];
    expect(input.target.credential.password?.sealed).toMatch(/^v2\./);
    expect(JSON.stringify(input)).not.toContain(PASSWORD);
    expect(input).toMatchObject({ hostId, target: { address: '10.213.7.9', port: 22 }, dataPath: { kind: 'tunnel' }, labels: { env: 'test' } });

    // The host entity starts its onboarding a moment after the POST: until then visibility says `onboarding`.
    const waiting = await eventually(async () => {
      const res = await http().get(`/v1/hosts/${hostId}`).set(viewer);
      return res.body.phase === 'needs-credentials' ? res : undefined;
    });
    expect(waiting.status).toBe(200);
    expect(waiting.body).toMatchObject({
      id: hostId,
      source: 'query',
      workflowStatus: 'RUNNING',
      phase: 'needs-credentials',
      address: '10.213.7.9',
      lastError: { type: 'AuthFailed' },
      steps: [{ step: 'probe', status: 'waiting' }],
    });

    const early = await http().post(`/v1/hosts/${hostId}/host-key/approve`).set(op).send({ hostKeySha256: OFFERED_KEY });
    expect(early.status).toBe(409);
    expect(early.body).toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('not waiting for a host key approval') });

    const creds = await http().post(`/v1/hosts/${hostId}/credentials`).set(op).send({ username: 'admin', password: 'new-' + PASSWORD });
    expect(creds.status).toBe(200);
    expect(creds.body).toEqual({ accepted: true, hop: 'target' });
    const twice = await http().post(`/v1/hosts/${hostId}/credentials`).set(op).send({ username: 'admin', password: 'x' });
    expect(twice.status).toBe(409);
    expect(twice.body.code).toBe('CONFLICT');

    const offered = await http().get(`/v1/hosts/${hostId}`).set(viewer);
    expect(offered.body).toMatchObject({ phase: 'needs-host-key-approval', offeredHostKeySha256: OFFERED_KEY });

    const wrongKey = await http().post(`/v1/hosts/${hostId}/host-key/approve`).set(op).send({ hostKeySha256: 'SHA256:' + 'B'.repeat(43) });
    expect(wrongKey.status).toBe(409);
    const approved = await http().post(`/v1/hosts/${hostId}/host-key/approve`).set(op).send({ hostKeySha256: OFFERED_KEY });
    expect(approved.status).toBe(200);

    // Onboarded: the host entity keeps watching (its memo has the onboarding's result), with the tunnel's live state
    // (its last heartbeat: the fake forward connects on its second attempt).
    const done = await eventually(async () => {
      const res = await http().get(`/v1/hosts/${hostId}`).set(viewer);
      return res.body.phase === 'healthy' && res.body.tunnel?.state === 'connected' ? res : undefined;
    });
    expect(done.body).toMatchObject({
      source: 'memo',
      workflowId: `host/${hostId}`,
      workflowStatus: 'RUNNING',
      phase: 'healthy',
      repairs: [],
      flapping: false,
      hostKeySha256: OFFERED_KEY,
      tunnelId: hostId,
      tunnel: { id: hostId, state: 'connected' },
      steps: [{ step: 'probe', status: 'succeeded' }],
    });
    const late = await http().post(`/v1/hosts/${hostId}/credentials`).set(op).send({ username: 'admin', password: 'x' });
    expect(late.status).toBe(409);
    expect(late.body.code).toBe('CONFLICT');

    // Visibility: listed under its phase (search attributes are eventually consistent).
    await eventually(async () => {
      const res = await http().get('/v1/hosts?phase=healthy&pageSize=1000').set(viewer);
      if (res.status !== 200) throw new Error(`list answered ${res.status}: ${JSON.stringify(res.body)}`);
      return res.body.items.some((i: { id: string; phase: string }) => i.id === hostId && i.phase === 'healthy');
    }, 60_000, 250);
    const other = await http().get('/v1/hosts?phase=needs-credentials&pageSize=1000').set(viewer);
    expect(other.body.items.map((i: { id: string }) => i.id)).not.toContain(hostId);

    await tunnel.executeUpdate('stop');
    await t.client.workflow.getHandle(`host/${hostId}`).terminate('test cleanup');
  });

  /** A host entity past onboarding (the stand-in keeps the real one's memo and change rules). */
  async function startHost(hostId: string, over: Partial<HostStatus> & Record<string, unknown> = {}) {
    const status: HostStatus = {
      hostId,
      address: '10.213.7.20',
      phase: 'healthy',
      since: 1_700_000_000_000,
      repairs: [],
      repairsLastHour: 0,
      flapping: false,
      onboarding: { hostId, address: '10.213.7.20', phase: 'healthy', steps: [], hostKeySha256: OFFERED_KEY },
      ...over,
    };
    return t.client.workflow.start(fakeHostEntity, { args: [status], taskQueue, workflowId: workflowIds.host(hostId) });
  }

  it('changes a host and rotates its key: 202 with a change id, 409 when the host refuses, GET shows what is in force', async () => {
    const hostId = uniqueName('chg').toLowerCase();
    const handle = await startHost(hostId, {
      tunnel: { tunnelId: hostId, state: 'down', since: 1_700_000_000_500, error: { type: 'TunnelFailed', message: 'connection reset' } },
      agentHealth: { manager: 'systemd', running: true, state: 'active/running', restarted: true, checkedAtMs: 1_700_000_000_900, debugDump: 'NOT-FOR-THE-API' } as HostStatus['agentHealth'],
      agentConfig: { mode: 'artifact', interval: '10s' },
      labels: { env: 'test' },
      // What the real entity also keeps in its status must never reach a reader.
      service: { target: { credential: { username: 'cloudroot', privateKey: { sealed: 'v2.k1.SEALED-MARKER.a.b' } } } },
    });
    const get = () => http().get(`/v1/hosts/${hostId}`).set(viewer);

    const before = await eventually(async () => {
      const res = await get();
      return res.body.source === 'memo' ? res : undefined;
    });
    expect(before.body).toMatchObject({
      phase: 'healthy',
      workflowId: `host/${hostId}`,
      tunnelReport: { tunnelId: hostId, state: 'down', since: 1_700_000_000_500, error: { type: 'TunnelFailed', message: 'connection reset' } },
      agentHealth: { manager: 'systemd', running: true, state: 'active/running', restarted: true, checkedAtMs: 1_700_000_000_900 },
      agentConfig: { mode: 'artifact', interval: '10s' },
      labels: { env: 'test' },
      changes: [],
      hostKeySha256: OFFERED_KEY,
    });
    expect(before.text).not.toMatch(/SEALED-MARKER|sealed|NOT-FOR-THE-API|cloudroot/);

    const patched = await http().patch(`/v1/hosts/${hostId}`).set(op).send({ interval: '30s', labels: { env: 'prod', team: 'db' } });
    expect(patched.status).toBe(202);
    expect(patched.body).toEqual({ accepted: true, changeId: 'change-1', statusUrl: `/v1/hosts/${hostId}` });
    expect(patched.headers.location).toBe(`/v1/hosts/${hostId}`);
    // The cached answer was dropped: the very next read has the change.
    const inFlight = await get();
    expect(inFlight.body.changes).toEqual([{ id: 'change-1', kind: 'change', requestedAtMs: expect.any(Number), change: { interval: '30s', labels: { env: 'prod', team: 'db' } } }]);

    // One at a time: the host's validator refuses, and says why.
    for (const req of [http().patch(`/v1/hosts/${hostId}`).send({ interval: '1m' }), http().post(`/v1/hosts/${hostId}/rotate-key`)]) {
      const res = await req.set(op);
      expect({ status: res.status, code: res.body.code }).toEqual({ status: 409, code: 'CONFLICT' });
      expect(res.body.message).toContain('change-1 is still in progress');
    }

    await handle.signal(finishChangeSignal, { outcome: 'applied' });
    const applied = await eventually(async () => {
      const res = await get();
      return res.body.changes?.[0]?.outcome === 'applied' ? res : undefined;
    });
    expect(applied.body).toMatchObject({ agentConfig: { mode: 'artifact', interval: '30s' }, labels: { env: 'prod', team: 'db' } });
    expect(applied.body.changes[0]).toMatchObject({ id: 'change-1', endedAtMs: expect.any(Number) });

    // agentVersion alone passes the API (it cannot know the host's mode); the artifact-mode host refuses it.
    const version = await http().patch(`/v1/hosts/${hostId}`).set(op).send({ agentVersion: '1.39.3-1' });
    expect({ status: version.status, code: version.body.code }).toEqual({ status: 409, code: 'CONFLICT' });
    expect(version.body.message).toContain('agentVersion needs repo mode');
    const repo = await http().patch(`/v1/hosts/${hostId}`).set(op).send({ agentMode: 'repo', agentVersion: '1.39.3-1' });
    expect(repo.status).toBe(202);
    expect(repo.body.changeId).toBe('change-2');
    await handle.signal(finishChangeSignal, { outcome: 'rolled-back', error: 'NoPoints: no points within 120 s' });
    const rolledBack = await eventually(async () => {
      const res = await get();
      return res.body.changes?.[1]?.outcome ? res : undefined;
    });
    expect(rolledBack.body.changes[1]).toMatchObject({ kind: 'change', outcome: 'rolled-back', error: 'NoPoints: no points within 120 s', change: { agentMode: 'repo', agentVersion: '1.39.3-1' } });
    expect(rolledBack.body.agentConfig).toEqual({ mode: 'artifact', interval: '30s' });

    const rotate = await http().post(`/v1/hosts/${hostId}/rotate-key`).set(op);
    expect(rotate.status).toBe(202);
    expect(rotate.body).toEqual({ accepted: true, changeId: 'rotate-key-3', statusUrl: `/v1/hosts/${hostId}` });
    expect(rotate.headers.location).toBe(`/v1/hosts/${hostId}`);
    expect((await get()).body.changes[2]).toEqual({ id: 'rotate-key-3', kind: 'rotate-key', requestedAtMs: expect.any(Number) });
    await handle.signal(finishChangeSignal, { outcome: 'applied' });

    // Offboarding: the host refuses; once its run has ended, the API says so.
    expect((await http().delete(`/v1/hosts/${hostId}`).set(op)).status).toBe(202);
    const offboarding = await http().patch(`/v1/hosts/${hostId}`).set(op).send({ interval: '1m' });
    expect({ status: offboarding.status, code: offboarding.body.code }).toEqual({ status: 409, code: 'CONFLICT' });
    expect(offboarding.body.message).toContain('is offboarding');
    await handle.terminate('test cleanup');
    for (const req of [http().patch(`/v1/hosts/${hostId}`).send({ interval: '1m' }), http().post(`/v1/hosts/${hostId}/rotate-key`)]) {
      const res = await req.set(op);
      expect({ status: res.status, code: res.body.code, message: res.body.message }).toEqual({ status: 409, code: 'CONFLICT', message: 'the workflow is not running (TERMINATED)' });
    }
  });

  it('a host waiting on a person after a repair shows who and which key, and refuses changes; unknown hosts are 404', async () => {
    const hostId = uniqueName('wait').toLowerCase();
    const handle = await startHost(hostId, { phase: 'needs-host-key-approval', waitingOn: 'bastion', offeredHostKeySha256: OFFERED_KEY });
    const waiting = await eventually(async () => {
      const res = await http().get(`/v1/hosts/${hostId}`).set(viewer);
      return res.body.source === 'memo' ? res : undefined;
    });
    expect(waiting.body).toMatchObject({ phase: 'needs-host-key-approval', waitingOn: 'bastion', offeredHostKeySha256: OFFERED_KEY });
    for (const req of [http().patch(`/v1/hosts/${hostId}`).send({ labels: {} }), http().post(`/v1/hosts/${hostId}/rotate-key`)]) {
      const res = await req.set(op);
      expect({ status: res.status, code: res.body.code }).toEqual({ status: 409, code: 'CONFLICT' });
      expect(res.body.message).toContain('only a healthy or degraded host changes');
    }
    await handle.terminate('test cleanup');

    for (const req of [http().patch('/v1/hosts/no-such-host-here').send({ interval: '10s' }), http().post('/v1/hosts/no-such-host-here/rotate-key')]) {
      const res = await req.set(op);
      expect({ status: res.status, code: res.body.code }).toEqual({ status: 404, code: 'HOST_NOT_FOUND' });
    }
  });

  it('pages with the server’s next-page tokens', async () => {
    const ids = [0, 1, 2].map(() => uniqueName('pg').toLowerCase());
    for (const hostId of ids) {
      expect((await http().post('/v1/hosts').set(op).send({ hostId, address: '10.213.7.10', username: 'a', password: 'p' })).status).toBe(202);
    }
    const first = await eventually(async () => {
      const res = await http().get('/v1/hosts?pageSize=1').set(viewer);
      return res.body.nextPageToken ? res : undefined;
    });
    expect(first.body.items).toHaveLength(1);
    const second = await http().get(`/v1/hosts?pageSize=1&pageToken=${first.body.nextPageToken}`).set(viewer);
    expect(second.status).toBe(200);
    expect(second.body.items).toHaveLength(1);
    expect(second.body.items[0].workflowId).not.toBe(first.body.items[0].workflowId);
    const bogus = await http().get('/v1/hosts?pageSize=1&pageToken=bm90LWEtdG9rZW4').set(viewer);
    expect(bogus.status).toBe(400);
    expect(bogus.body.errors[0].field).toBe('pageToken');
    await Promise.all(ids.map((id) => t.client.workflow.getHandle(`host/${id}`).terminate('test cleanup')));
  });

  it('reports a terminated onboarding as failed, and unknown ids as 404', async () => {
    const hostId = uniqueName('term').toLowerCase();
    await http().post('/v1/hosts').set(op).send({ hostId, address: '10.213.7.11', username: 'a', password: 'p' });
    await t.client.workflow.getHandle(`host/${hostId}`).terminate('operator gave up');
    const res = await http().get(`/v1/hosts/${hostId}`).set(viewer);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ workflowStatus: 'TERMINATED', phase: 'failed', source: 'result', lastError: { type: 'TerminatedFailure' } });

    const missing = await http().get('/v1/hosts/no-such-host-here').set(viewer);
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('HOST_NOT_FOUND');
    const missingCreds = await http().post('/v1/hosts/no-such-host-here/credentials').set(op).send({ username: 'a', password: 'p' });
    expect(missingCreds.status).toBe(404);
    expect(missingCreds.body.code).toBe('HOST_NOT_FOUND');
    const missingTunnel = await http().get('/v1/tunnels/no-such-tunnel').set(viewer);
    expect(missingTunnel.status).toBe(404);
    expect(missingTunnel.body.code).toBe('TUNNEL_NOT_FOUND');
  });

  it('shows a tunnel’s live activity: attempt, last failure, heartbeat; restarts and stops it', async () => {
    const tunnelId = uniqueName('tun').toLowerCase();
    await t.client.workflow.start('tunnelKeeper', {
      args: [{ tunnelId }],
      taskQueue,
      workflowId: workflowIds.tunnel(tunnelId),
      typedSearchAttributes: [{ key: TunnelIdKey, value: tunnelId }],
    });
    const live = await eventually(async () => {
      const res = await http().get(`/v1/tunnels/${tunnelId}`).set(viewer);
      const a = res.body.activities?.[0];
      return a && a.attempt >= 2 && a.heartbeatDetails ? res : undefined;
    });
    expect(live.body).toMatchObject({ id: tunnelId, source: 'query', state: 'connected', workflowStatus: 'RUNNING' });
    expect(live.body.activities[0]).toMatchObject({
      activityType: 'holdReverseForward',
      state: 'started',
      heartbeatDetails: { connected: true, boundPort: 4242 },
      lastFailure: { type: 'TunnelFailed', message: expect.stringContaining('remote port forwarding failed') },
    });
    expect(live.body.lastFailure).toMatch(/remote port forwarding failed/);

    await eventually(async () => {
      const res = await http().get('/v1/tunnels?pageSize=1000').set(viewer);
      return res.body.items.some((i: { id: string }) => i.id === tunnelId);
    });

    const restart = await http().post(`/v1/tunnels/${tunnelId}/restart`).set(op);
    expect(restart.status).toBe(200);
    expect(restart.body).toEqual({ restarted: true });
    expect((await http().get(`/v1/tunnels/${tunnelId}`).set(viewer)).body.stats.reconnects).toBe(1);

    const stop = await http().delete(`/v1/tunnels/${tunnelId}`).set(op);
    expect(stop.status).toBe(200);
    expect(stop.body).toEqual({ stopped: true });
    const stopped = await eventually(async () => {
      const res = await http().get(`/v1/tunnels/${tunnelId}`).set(viewer);
      return res.body.workflowStatus === 'COMPLETED' ? res : undefined;
    });
    expect(stopped.body.state).toBe('stopped');
    const again = await http().delete(`/v1/tunnels/${tunnelId}`).set(op);
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('CONFLICT');
  });

  it('without a worker: status from visibility, updates time out with 504', async () => {
    const lonely = await startTestApp(address, {
      configOverrides: { onboardingTaskQueue: uniqueName('no-worker') },
      timeouts: { rpcMs: 10_000, queryMs: 1_000, updateMs: 1_500 },
      docs: false,
    });
    try {
      const hostId = uniqueName('lonely').toLowerCase();
      const lhttp = () => request(lonely.app.getHttpServer());
      expect((await lhttp().post('/v1/hosts').set(op).send({ hostId, address: 'db-1.internal', username: 'a', password: 'p' })).status).toBe(202);
      const res = await lhttp().get(`/v1/hosts/${hostId}`).set(viewer);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ source: 'visibility', phase: 'onboarding', address: 'db-1.internal', steps: [] });
      // Its onboarding has not started (no worker ran the host entity): nothing waits for credentials yet.
      const upd = await lhttp().post(`/v1/hosts/${hostId}/credentials`).set(op).send({ username: 'a', password: 'p' });
      expect(upd.status).toBe(409);
      expect(upd.body.code).toBe('CONFLICT');
      const off = await lhttp().delete(`/v1/hosts/${hostId}`).set(op);
      expect(off.status).toBe(504);
      expect(off.body.code).toBe('TEMPORAL_TIMEOUT');
      await lonely.client.workflow.getHandle(`host/${hostId}`).terminate('test cleanup');
    } finally {
      await lonely.close();
    }
  });
});
