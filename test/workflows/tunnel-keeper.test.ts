import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { Keyring } from '../../lib/keyring';
import { dataConverterFor } from '../../lib/temporal';
import { tunnelStatus } from '../../activities/tunnel/describe';
import type { TunnelActivities } from '../../activities/tunnel';
import { workflowIds, type TunnelSpec, type TunnelStats } from '../../workflows/contracts';
import { restartTunnelUpdate, stopTunnelUpdate, tunnelStatusQuery, updateTunnelSpecUpdate } from '../../workflows/messages';
import { TunnelIdKey } from '../../workflows/search-attributes';
import type { KeeperStatus, tunnelKeeper } from '../../workflows/tunnel-keeper';
import { eventually, uniqueName } from '../support/stack';
import { connectedStats, fakeTunnelSpec } from '../support/fake-tunnel';
import { useWorkflowTestEnv } from '../support/workflow-env';

// The keeper against a real dev server with a fake holdReverseForward: what matters here is the
// workflow's loop, retries, messages and continue-as-new, not SSH.

const keyring = Keyring.forTests('tunnel-keeper');
const env = useWorkflowTestEnv(keyring);

const specFor = (tunnelId: string): TunnelSpec => fakeTunnelSpec(keyring, tunnelId, '10.213.250.1', { heartbeatMs: 200, maxBackoffMs: 300 });

type Plan = (attempt: number, call: number) => 'fail' | 'hold';

interface Fake {
  activities: Pick<TunnelActivities, 'holdReverseForward'>;
  calls: Array<{ attempt: number; activityId: string; ended?: 'lease' | 'cancelled' | 'failed' }>;
}

/** A stand-in that heartbeats like the real one (reconnects = attempt - 1) and ends on lease or cancellation. */
function fakeHold(plan: Plan): Fake {
  const calls: Fake['calls'] = [];
  async function holdReverseForward(spec: TunnelSpec, opts: { leaseMs?: number } = {}): Promise<TunnelStats> {
    const ctx = Context.current();
    const call = { attempt: ctx.info.attempt, activityId: ctx.info.activityId } as Fake['calls'][number];
    calls.push(call);
    if (plan(ctx.info.attempt, calls.length) === 'fail') {
      call.ended = 'failed';
      throw ApplicationFailure.retryable(`fake: remote port forwarding failed (call ${calls.length})`, 'TunnelFailed');
    }
    const stats = connectedStats(spec.bind.port, ctx.info.attempt, Date.now());
    ctx.heartbeat(stats);
    const timer = setInterval(() => ctx.heartbeat(stats), spec.timing?.heartbeatMs ?? 200);
    try {
      await ctx.sleep(opts.leaseMs ?? 60_000); // rejects on cancellation
      call.ended = 'lease';
      return stats;
    } catch (err) {
      call.ended = 'cancelled';
      throw err;
    } finally {
      clearInterval(timer);
    }
  }
  return { activities: { holdReverseForward }, calls };
}

async function withKeeperWorker<T>(fake: Fake, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = uniqueName('tunnel-keeper');
  const worker = await Worker.create({
    connection: env.connection,
    taskQueue,
    workflowBundle: env.bundle,
    activities: fake.activities,
    dataConverter: dataConverterFor(keyring),
    // Cancellation reaches an activity with a heartbeat response; the default throttle (0.8 × heartbeatTimeout) is slower.
    maxHeartbeatThrottleInterval: '200ms',
    shutdownGraceTime: '2s',
  });
  return worker.runUntil(fn(taskQueue));
}

async function startKeeper(
  taskQueue: string,
  tunnelId: string,
  options: { leaseMs?: number; leasesPerRun?: number } = {},
  withSearchAttribute = true,
) {
  return env.client.workflow.start<typeof tunnelKeeper>('tunnelKeeper', {
    args: [specFor(tunnelId), { leases: 0 }, { leaseMs: 60_000, ...options }],
    taskQueue,
    workflowId: workflowIds.tunnel(tunnelId),
    typedSearchAttributes: withSearchAttribute ? [{ key: TunnelIdKey, value: tunnelId }] : [],
    workflowExecutionTimeout: '2m', // a broken test must not leave a keeper running forever
  });
}

test('reconnects after retryable failures and reports connected with the attempt count', async () => {
  const fake = fakeHold((attempt) => (attempt <= 2 ? 'fail' : 'hold'));
  await withKeeperWorker(fake, async (taskQueue) => {
    const tunnelId = uniqueName('reconnect');
    const handle = await startKeeper(taskQueue, tunnelId);
    const status = await eventually(async () => {
      const s = await tunnelStatus(env.client, tunnelId);
      return s.state === 'connected' ? s : undefined;
    });
    expect(status.attempt).toBe(3);
    expect(status.stats).toMatchObject({ connected: true, reconnects: 2, boundPort: 18086 });
    // The server keeps the previous attempt's failure: the API can say why it reconnected.
    expect(status.lastFailure).toContain('remote port forwarding failed (call 2)');
    expect(fake.calls.map((c) => c.ended)).toEqual(['failed', 'failed', undefined]);

    await handle.executeUpdate(stopTunnelUpdate);
    await handle.result();
  });
});

test('stop update cancels the activity, waits for it to end, and completes the workflow', async () => {
  const fake = fakeHold(() => 'hold');
  await withKeeperWorker(fake, async (taskQueue) => {
    const tunnelId = uniqueName('stop');
    // Started without the search attribute: the keeper upserts it itself.
    const handle = await startKeeper(taskQueue, tunnelId, {}, false);
    await eventually(async () => (await tunnelStatus(env.client, tunnelId)).state === 'connected');
    expect((await handle.describe()).typedSearchAttributes.get(TunnelIdKey)).toBe(tunnelId);

    const reply = await handle.executeUpdate(stopTunnelUpdate);
    expect(reply).toEqual({ stopped: true });
    // WAIT_CANCELLATION_COMPLETED: by the time stop answers, the activity has finished its cleanup.
    expect(fake.calls).toHaveLength(1);
    expect(fake.calls[0].ended).toBe('cancelled');
    await handle.result();
    expect((await handle.describe()).status.name).toBe('COMPLETED');
    expect((await tunnelStatus(env.client, tunnelId)).state).toBe('stopped');
  });
});

test('restart update cancels the current activity and starts a new one', async () => {
  const fake = fakeHold(() => 'hold');
  await withKeeperWorker(fake, async (taskQueue) => {
    const tunnelId = uniqueName('restart');
    const handle = await startKeeper(taskQueue, tunnelId);
    await eventually(async () => (await tunnelStatus(env.client, tunnelId)).state === 'connected');

    expect(await handle.executeUpdate(restartTunnelUpdate)).toEqual({ restarted: true });
    await eventually(async () => fake.calls.length === 2 && (await tunnelStatus(env.client, tunnelId)).state === 'connected');
    expect(fake.calls[0].ended).toBe('cancelled');
    expect(fake.calls[1].activityId).not.toBe(fake.calls[0].activityId);
    expect(fake.calls[1].attempt).toBe(1);
    expect((await handle.describe()).status.name).toBe('RUNNING');

    await handle.executeUpdate(stopTunnelUpdate);
    await handle.result();
    expect(fake.calls.every((c) => c.ended === 'cancelled')).toBe(true);
  });
});

test('continues as new after N leases under the same workflow id, carrying the lease count', async () => {
  const fake = fakeHold(() => 'hold');
  await withKeeperWorker(fake, async (taskQueue) => {
    const tunnelId = uniqueName('can');
    const handle = await startKeeper(taskQueue, tunnelId, { leaseMs: 300, leasesPerRun: 2 });
    const firstRunId = handle.firstExecutionRunId;
    // Two runs of two leases each, then we look at the third run.
    const later = await eventually(async () => {
      const d = await env.client.workflow.getHandle(workflowIds.tunnel(tunnelId)).describe();
      if (d.runId === firstRunId || d.status.name !== 'RUNNING') return undefined;
      const q = (await env.client.workflow.getHandle(workflowIds.tunnel(tunnelId)).query(tunnelStatusQuery)) as KeeperStatus;
      return q.leases >= 4 ? { d, q } : undefined;
    });
    expect(later.d.workflowId).toBe(workflowIds.tunnel(tunnelId));
    expect(later.d.typedSearchAttributes.get(TunnelIdKey)).toBe(tunnelId);
    expect(fake.calls.filter((c) => c.ended === 'lease').length).toBeGreaterThanOrEqual(4);

    const latest = env.client.workflow.getHandle(workflowIds.tunnel(tunnelId));
    expect(await latest.executeUpdate(stopTunnelUpdate)).toEqual({ stopped: true });
    await latest.result();
  });
});

test('a refused forward (AuthFailed, HostKeyMismatch) parks the keeper: it tells its hosts and waits for a new spec', async () => {
  let refuse = true;
  const seen: Array<{ pin?: string; reportTo?: string[] }> = [];
  const fake: Fake = {
    calls: [],
    activities: {
      holdReverseForward: async (spec: TunnelSpec, opts: { leaseMs?: number; reportTo?: string[] } = {}) => {
        const ctx = Context.current();
        seen.push({ pin: spec.ssh.hostKeySha256, reportTo: opts.reportTo });
        if (refuse) {
          throw ApplicationFailure.create({
            type: 'HostKeyMismatch',
            message: 'host key of 10.213.250.1:22 is SHA256:new, expected SHA256:old',
            nonRetryable: true,
            details: [{ expected: 'SHA256:old', offered: 'SHA256:new', address: '10.213.250.1', port: 22, hop: 'target' }],
          });
        }
        const stats = connectedStats(spec.bind.port, ctx.info.attempt, Date.now());
        const timer = setInterval(() => ctx.heartbeat(stats), 200);
        ctx.heartbeat(stats);
        try {
          await ctx.sleep(opts.leaseMs ?? 60_000);
          return stats;
        } finally {
          clearInterval(timer);
        }
      },
    },
  };
  await withKeeperWorker(fake, async (taskQueue) => {
    const tunnelId = uniqueName('refused');
    const hostId = uniqueName('h');
    const handle = await env.client.workflow.start<typeof tunnelKeeper>('tunnelKeeper', {
      args: [specFor(tunnelId), { leases: 0, hosts: [hostId] }, { leaseMs: 60_000 }],
      taskQueue,
      workflowId: workflowIds.tunnel(tunnelId),
      workflowExecutionTimeout: '2m',
    });
    const parked = await eventually(async () => {
      const s = await tunnelStatus(env.client, tunnelId);
      return s.state === 'refused' ? s : undefined;
    });
    expect(parked.refusal).toMatchObject({ type: 'HostKeyMismatch', details: { offered: 'SHA256:new', hop: 'target' } });
    expect(parked.lastFailure).toContain('host key of 10.213.250.1:22');
    expect((await handle.describe()).status.name).toBe('RUNNING');
    // Its host heard it: one signal to host/<id> (the host entity is not running here: the signal fails, which is fine).
    const history = await handle.fetchHistory();
    const signalled = (history.events ?? []).filter((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes);
    expect(signalled.map((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes?.workflowExecution?.workflowId)).toEqual([workflowIds.host(hostId)]);
    expect(seen).toHaveLength(1); // parked: no retry loop against a refusing server

    // The host approved the new key: a new spec wakes the keeper and the forward comes up with the new pin.
    refuse = false;
    const next = { ...specFor(tunnelId), ssh: { ...specFor(tunnelId).ssh, hostKeySha256: 'SHA256:' + 'N'.repeat(43) } };
    expect(await handle.executeUpdate(updateTunnelSpecUpdate, { args: [{ spec: next, hostId }] })).toMatchObject({ changed: true });
    await eventually(async () => (await tunnelStatus(env.client, tunnelId)).state === 'connected');
    expect(seen.at(-1)).toEqual({ pin: 'SHA256:' + 'N'.repeat(43), reportTo: [hostId] });
    await handle.executeUpdate(stopTunnelUpdate);
    await handle.result();
  });
});
