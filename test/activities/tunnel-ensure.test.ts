import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { ensureTunnel } from '../../activities/tunnel/ensure-tunnel';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { dataConverterFor } from '../../lib/temporal';
import { workflowIds, type TunnelSpec, type TunnelStats } from '../../workflows/contracts';
import { stopTunnelUpdate } from '../../workflows/messages';
import { TunnelIdKey } from '../../workflows/search-attributes';
import { uniqueName } from '../support/stack';
import { fakeTunnelSpec, holdsConnected } from '../support/fake-tunnel';
import { useWorkflowTestEnv } from '../support/workflow-env';

// ensureTunnel against a real dev server: it starts (or reuses) the keeper and waits for its heartbeat to say
// connected. The keeper's activity is a fake here; the real one is covered in tunnel.test.ts.

const keyring = Keyring.forTests('tunnel-ensure');
const log = createLogger('test-tunnel-ensure');
const env = useWorkflowTestEnv(keyring);

const specFor = (tunnelId: string): TunnelSpec => fakeTunnelSpec(keyring, tunnelId, '10.213.250.2', { heartbeatMs: 500, maxBackoffMs: 300 });

type Hold = (spec: TunnelSpec, opts?: { leaseMs?: number }) => Promise<TunnelStats>;

/** Heartbeats connected stats like the real activity, until cancelled; records each call's run id. */
const holdsConnectedIn = (calls: string[]): Hold => holdsConnected((_spec, ctx) => calls.push(ctx.info.workflowExecution?.runId ?? ''));

async function withTunnelWorker<T>(hold: Hold, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = uniqueName('tunnels');
  const worker = await Worker.create({
    connection: env.connection,
    taskQueue,
    workflowBundle: env.bundle,
    activities: { holdReverseForward: hold },
    dataConverter: dataConverterFor(keyring),
    maxHeartbeatThrottleInterval: '200ms',
    shutdownGraceTime: '2s',
  });
  return worker.runUntil(fn(taskQueue));
}

function runEnsure(taskQueue: string, spec: TunnelSpec, connectDeadlineMs: number): Promise<TunnelStats> {
  const mock = new MockActivityEnvironment();
  const activity = ensureTunnel({ temporal: { client: env.client, tunnelTaskQueue: taskQueue }, log });
  return mock.run(activity, spec, { connectDeadlineMs, pollMs: 100 }) as Promise<TunnelStats>;
}

async function stop(tunnelId: string) {
  const handle = env.client.workflow.getHandle(workflowIds.tunnel(tunnelId));
  await handle.executeUpdate(stopTunnelUpdate);
  await handle.result();
}

test('starts the keeper once, waits for connected, and reuses the running keeper', async () => {
  const calls: string[] = [];
  await withTunnelWorker(holdsConnectedIn(calls), async (taskQueue) => {
    const tunnelId = uniqueName('ensure');
    const spec = specFor(tunnelId);
    const stats = await runEnsure(taskQueue, spec, 20_000);
    expect(stats).toMatchObject({ connected: true, boundPort: 18086, reconnects: 0 });

    // The same spec again (an onboarding retried): same keeper, same run, no second forward.
    const again = await runEnsure(taskQueue, spec, 20_000);
    expect(again.connected).toBe(true);
    expect(calls).toHaveLength(1);
    const d = await env.client.workflow.getHandle(workflowIds.tunnel(tunnelId)).describe();
    expect(d.runId).toBe(calls[0]);
    expect(d.typedSearchAttributes.get(TunnelIdKey)).toBe(tunnelId);

    // A new spec (a re-onboarded host brings a new forward key): the same keeper restarts its forward with it.
    const renewed = await runEnsure(taskQueue, specFor(tunnelId), 20_000);
    expect(renewed.connected).toBe(true);
    expect(calls).toEqual([d.runId, d.runId]);
    await stop(tunnelId);
  });
});

test('gives up at the deadline with the keeper\'s last failure', async () => {
  const failing: Hold = async () => {
    throw ApplicationFailure.retryable('remote port forwarding failed for 127.0.0.1:18086 (fake)', 'TunnelFailed');
  };
  await withTunnelWorker(failing, async (taskQueue) => {
    const tunnelId = uniqueName('deadline');
    const err = await runEnsure(taskQueue, specFor(tunnelId), 2_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    const f = err as ApplicationFailure;
    expect(f.type).toBe('TunnelFailed');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/not connected within 2000 ms \(state reconnecting, attempt \d+\): .*remote port forwarding failed/);
    // The keeper keeps trying after ensureTunnel gave up: the tunnel heals when the host does.
    expect((await env.client.workflow.getHandle(workflowIds.tunnel(tunnelId)).describe()).status.name).toBe('RUNNING');
    await stop(tunnelId);
  });
});

test('fails at once, with the same named failure, when the keeper was refused (it parks and waits for a new spec)', async () => {
  const authFails: Hold = async () => {
    throw ApplicationFailure.create({
      type: 'AuthFailed',
      message: 'authentication failed on 10.213.250.2:22: fake',
      nonRetryable: true,
      details: [{ address: '10.213.250.2', port: 22, hop: 'target' }],
    });
  };
  await withTunnelWorker(authFails, async (taskQueue) => {
    const tunnelId = uniqueName('authfail');
    const err = await runEnsure(taskQueue, specFor(tunnelId), 60_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    const f = err as ApplicationFailure;
    // Not the deadline's "not connected within": it saw the refusal and says what it was, for the host to act on.
    expect(f.type).toBe('AuthFailed');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/authentication failed on 10\.213\.250\.2:22/);
    expect(f.details?.[0]).toMatchObject({ hop: 'target', address: '10.213.250.2' });
    expect((await env.client.workflow.getHandle(workflowIds.tunnel(tunnelId)).describe()).status.name).toBe('RUNNING');
    await stop(tunnelId);
  });
});
