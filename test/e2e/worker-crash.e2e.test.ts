import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { Keyring } from '../../lib/keyring';
import { sealSecret } from '../../lib/sealed-secret';
import { workflowIds, type OnboardHostInput, type OnboardingStatus } from '../../workflows/contracts';
import { createFleet, fleetUnsupportedReason, type Fleet } from '../fleet';
import { eventually, testClient, testStack, uniqueName } from '../support/stack';

// A worker process dies with SIGKILL in the middle of `ansible-playbook`; another worker process picks the
// activity up after its heartbeat timeout and the same run finishes: one Telegraf, one cloudroot user.
const unsupported = fleetUnsupportedReason();
const suite = unsupported ? describe.skip : describe;

const root = path.resolve(__dirname, '..', '..');

suite('worker crash during the Ansible step', () => {
  const keyring = Keyring.forTests('worker-crash');
  const queues = { onboarding: uniqueName('crash-onb'), tunnels: uniqueName('crash-tun') };
  const children: ChildProcess[] = [];
  let fleet: Fleet;
  let client: Client;

  function startWorkerProcess(name: string): ChildProcess {
    const stack = testStack();
    const child = spawn(process.execPath, ['-r', '@swc-node/register', path.join(root, 'apps', 'worker', 'main.ts')], {
      cwd: root,
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: stack.temporalAddress,
        AO_MASTER_KEYS: keyring.toSpec(),
        AO_ONBOARDING_TASK_QUEUE: queues.onboarding,
        AO_TUNNEL_TASK_QUEUE: queues.tunnels,
        INFLUX_URL: stack.influx.url,
        INFLUX_BUCKET: stack.influx.bucket,
        INFLUX_TOKEN: stack.influx.token,
        TELEGRAF_PATH: stack.telegrafPath,
        AO_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    children.push(child);
    child.once('exit', (code, signal) => console.log(`worker ${name} exited (${code ?? signal})`));
    return child;
  }

  beforeAll(async () => {
    [fleet, client] = await Promise.all([createFleet(), testClient(keyring)]);
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await client?.connection.close();
    await fleet?.destroy();
  });

  it('the same run finishes on the surviving worker; nothing is installed twice', async () => {
    const host = await fleet.addHost({ name: 'crash', topology: 'reachable-influx', influxTarget: { host: '127.0.0.1', port: Number(new URL(testStack().influx.url).port) } });
    const first = startWorkerProcess('A');
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
      return pending.some((a) => a.activityType?.name === 'installAgent' && a.state === 3 /* STARTED */);
    }, 120_000, 200);
    await eventually(async () => spawnSync('pgrep', ['-P', String(first.pid), '-f', 'ansible-playbook']).status === 0, 60_000, 100);
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));

    startWorkerProcess('B');
    const result = (await handle.result()) as OnboardingStatus;
    expect(result.phase).toBe('healthy');

    // The install activity really ran twice (attempt 2 on worker B), in one workflow run.
    const history = await handle.fetchHistory();
    const attempts = (history.events ?? [])
      .filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 0);
    expect(Math.max(...attempts)).toBeGreaterThanOrEqual(2);
    const runs = (history.events ?? []).filter((e) => e.workflowExecutionStartedEventAttributes).length;
    expect(runs).toBe(1);

    const state = await fleet.exec(host, 'grep -c "^cloudroot:" /etc/passwd; pgrep -c -x telegraf; pgrep -c -f telegraf-supervisor');
    expect(state.stdout.trim().split('\n')).toEqual(['1', '1', '1']);
  });
});
