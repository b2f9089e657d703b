import { spawnSync } from 'node:child_process';
import { temporal } from '@temporalio/proto';
import type { Client } from '@temporalio/client';
import { Keyring } from '../../lib/keyring';
import { sealSecret } from '../../lib/sealed-secret';
import { workflowIds, type OnboardHostInput, type OnboardingStatus } from '../../workflows/contracts';
import { createFleet, fleetUnsupportedReason, type Fleet } from '../fleet';
import { eventually, testClient, testStack, uniqueName } from '../support/stack';
import { startWorkerProcess, writeBundleFiles, type BundleFiles, type WorkerProcess } from '../support/worker-process';
import { bundleWorkflows } from '../../apps/worker/bundle';

// A worker process dies with SIGKILL in the middle of `ansible-playbook`; another worker process picks the
// activity up after its heartbeat timeout and the same run finishes: one Telegraf, one cloudroot user.
const unsupported = fleetUnsupportedReason();
const suite = unsupported ? describe.skip : describe;

suite('worker crash during the Ansible step', () => {
  const keyring = Keyring.forTests('worker-crash');
  const queues = { onboarding: uniqueName('crash-onb'), tunnels: uniqueName('crash-tun') };
  const workers: WorkerProcess[] = [];
  let bundle: BundleFiles;
  let fleet: Fleet;
  let client: Client;

  function startWorker(identity: string): Promise<WorkerProcess> {
    const stack = testStack();
    return startWorkerProcess({
      identity,
      bundle,
      env: {
        TEMPORAL_ADDRESS: stack.temporalAddress,
        AO_MASTER_KEYS: keyring.toSpec(),
        AO_ONBOARDING_TASK_QUEUE: queues.onboarding,
        AO_TUNNEL_TASK_QUEUE: queues.tunnels,
        INFLUX_URL: stack.influx.url,
        INFLUX_BUCKET: stack.influx.bucket,
        INFLUX_TOKEN: stack.influx.token,
        TELEGRAF_PATH: stack.telegrafPath ?? '',
      },
    }).then((w) => (workers.push(w), w));
  }

  beforeAll(async () => {
    [fleet, client] = await Promise.all([createFleet(), testClient(keyring)]);
    bundle = writeBundleFiles(await bundleWorkflows());
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    bundle?.remove();
    await client?.connection.close();
    await fleet?.destroy();
  });

  it('the same run finishes on the surviving worker; nothing is installed twice', async () => {
    const t0 = Date.now();
    const mark = (what: string) => console.log(JSON.stringify({ event: what, atSec: (Date.now() - t0) / 1000 }));
    const host = await fleet.addHost({ name: 'crash', topology: 'reachable-influx', influxTarget: { host: '127.0.0.1', port: Number(new URL(testStack().influx.url).port) } });
    const first = await startWorker('crash-A');
    const input: OnboardHostInput = {
      hostId: uniqueName('crash'),
      target: { address: host.address, port: host.sshPort, credential: { username: host.bootstrapUser, password: sealSecret(keyring, host.bootstrapPassword) } },
      dataPath: { kind: 'direct', influxUrl: host.influxUrl! },
      agent: { mode: 'artifact' },
      timing: { verifyDeadlineMs: 120_000 },
    };
    const handle = await client.workflow.start('onboardHost', {
      taskQueue: queues.onboarding,
      workflowId: workflowIds.onboarding(input.hostId),
      args: [input],
    });

    // Kill worker A once ansible-playbook is running on the host's behalf.
    await eventually(async () => {
      const desc = await handle.describe();
      const pending = desc.raw.pendingActivities ?? [];
      return pending.some((a) => a.activityType?.name === 'installAgent' && a.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED);
    }, 120_000, 200);
    await eventually(async () => spawnSync('pgrep', ['-P', String(first.pid), '-f', 'ansible-playbook']).status === 0, 60_000, 100);
    await first.stop('SIGKILL');
    mark('worker A killed during ansible-playbook');

    await startWorker('crash-B');
    // Printed, not asserted: how long the step took to resume elsewhere (bounded by the 10 s heartbeat timeout).
    await eventually(async () => {
      const pending = (await handle.describe()).raw.pendingActivities ?? [];
      return pending.some((a) => a.activityType?.name === 'installAgent' && (a.attempt ?? 0) >= 2 && a.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED);
    }, 120_000, 100).then(() => mark('install resumed on worker B'), () => mark('install resume not observed'));
    const result = (await handle.result()) as OnboardingStatus;
    mark('onboarding finished on worker B');
    expect(result.phase).toBe('healthy');

    // The install activity really ran twice (attempt 2 on worker B), in one workflow run.
    const history = await handle.fetchHistory();
    const attempts = (history.events ?? [])
      .filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 0);
    expect(Math.max(...attempts)).toBeGreaterThanOrEqual(2);
    const runs = (history.events ?? []).filter((e) => e.workflowExecutionStartedEventAttributes).length;
    expect(runs).toBe(1);

    const state = await fleet.exec(host, 'grep -c "^cloudroot:" /etc/passwd; pgrep -c -x telegraf; pgrep -c -f "[t]elegraf-supervisor"');
    expect(state.stdout.trim().split('\n')).toEqual(['1', '1', '1']);
  }, 400_000);
});
