import { InfluxDB } from '@influxdata/influxdb-client';
import { ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { ensureFreshnessSchedule } from '../../apps/worker/freshness-schedule';
import { FRESHNESS_SERIES, sweepFreshness, type SweepFreshnessResult } from '../../activities/metrics/freshness';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { dataConverterFor } from '../../lib/temporal';
import { workflowIds } from '../../workflows/contracts';
import { HostIdKey } from '../../workflows/search-attributes';
import { eventually, testClient, testStack, uniqueName } from '../support/stack';
import { freshnessReportsQuery, hostLifecycle, stopStandInSignal } from '../activities/fake-host-workflows';

// The Schedule that runs the fleet-wide sweep: created once, left alone when its settings are there, updated when
// they differ, and what it starts is the real freshnessSweep workflow with the real activity.

const keyring = Keyring.forTests();

describe('host-freshness-sweep Schedule (dev server)', () => {
  let client: Client;
  let connection: NativeConnection;
  let worker: Worker;
  let running: Promise<void>;
  let taskQueue: string;

  beforeAll(async () => {
    client = await testClient(keyring);
    connection = await NativeConnection.connect({ address: testStack().temporalAddress });
    taskQueue = uniqueName('freshness-schedule');
    const deps = { keyring, influx: testStack().influx, log: createLogger('test'), temporal: { client, tunnelTaskQueue: 'unused' } };
    worker = await Worker.create({
      connection,
      taskQueue,
      // The stand-in host entity and the real freshnessSweep in one bundle.
      workflowsPath: require.resolve('../activities/fake-host-workflows'),
      activities: { sweepFreshness: sweepFreshness(deps) },
      dataConverter: dataConverterFor(keyring),
    });
    running = worker.run();
  });

  afterAll(async () => {
    worker?.shutdown();
    await running?.catch(() => undefined);
    await connection?.close();
    await client?.connection.close();
  });

  it('exists after ensureFreshnessSchedule, is left alone when unchanged, updated when not, and runs the sweep', async () => {
    const scheduleId = uniqueName('host-freshness-sweep');
    // Hourly, so it never fires by itself during the test: the run below is a trigger.
    const opts = { taskQueue, everyMs: 3600_000, staleAfterMs: 90_000, scheduleId };
    expect(await ensureFreshnessSchedule(client, opts)).toBe('created');
    const handle = client.schedule.getHandle(scheduleId);
    try {
      const d = await handle.describe();
      expect(d.spec.intervals).toMatchObject([{ every: 3600_000 }]);
      expect(d.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
      expect(d.policies.catchupWindow).toBe(3600_000);
      expect(d.action).toMatchObject({ type: 'startWorkflow', workflowType: 'freshnessSweep', taskQueue, args: [{ staleAfterMs: 90_000, hostTaskQueue: taskQueue }] });

      // Again with the same settings: nothing changes (no update, so no new conflict token).
      expect(await ensureFreshnessSchedule(client, opts)).toBe('unchanged');
      expect(await ensureFreshnessSchedule(client, { ...opts, everyMs: 3600_400 })).toBe('unchanged'); // whole seconds
      const again = await handle.describe();
      expect(again.info.lastUpdatedAt).toEqual(d.info.lastUpdatedAt);
      expect(again.raw.conflictToken).toEqual(d.raw.conflictToken);

      // Other settings: updated in place, a pause set by hand kept.
      await handle.pause('paused by an operator');
      expect(await ensureFreshnessSchedule(client, { ...opts, everyMs: 7200_000, staleAfterMs: 120_000 })).toBe('updated');
      const updated = await handle.describe();
      expect(updated.spec.intervals).toMatchObject([{ every: 7200_000 }]);
      expect(updated.action.args).toEqual([{ staleAfterMs: 120_000, hostTaskQueue: taskQueue }]);
      expect(updated.state.paused).toBe(true);
      expect(await ensureFreshnessSchedule(client, { ...opts, everyMs: 7200_000, staleAfterMs: 120_000 })).toBe('unchanged');

      // What it starts: the real sweep, which tells this queue's one stand-in host.
      const hostId = uniqueName('sched-host');
      const host = await client.workflow.start(hostLifecycle, {
        taskQueue,
        workflowId: workflowIds.host(hostId),
        typedSearchAttributes: [{ key: HostIdKey, value: hostId }],
      });
      const { url, token, org, bucket } = testStack().influx;
      const w = new InfluxDB({ url, token }).getWriteApi(org, bucket, 'ms');
      const at = Date.now();
      w.writeRecord(`${FRESHNESS_SERIES.measurement},host_id=${hostId} ${FRESHNESS_SERIES.field}=1i ${at}`);
      await w.close();
      await eventually(async () => {
        for await (const wf of client.workflow.list({ query: `TaskQueue = '${taskQueue}' AND WorkflowType = 'hostLifecycle'` })) if (wf.workflowId === host.workflowId) return true;
        return false;
      }, 30_000, 200);
      await handle.unpause();
      await handle.trigger();
      const started = await eventually(async () => (await handle.describe()).info.recentActions[0]?.action.workflow, 30_000, 200);
      const result = (await client.workflow.getHandle(started.workflowId).result()) as SweepFreshnessResult;
      expect(result).toMatchObject({ hostsWatched: 1, staleHosts: 0, signalled: 1, skipped: 0 });
      const reports = await eventually(async () => {
        const r = await host.query(freshnessReportsQuery);
        return r.length ? r : undefined;
      });
      expect(reports).toEqual([expect.objectContaining({ fresh: true, lastPointAtMs: at })]);
      await host.signal(stopStandInSignal);
    } finally {
      await handle.delete();
    }
  });
});
