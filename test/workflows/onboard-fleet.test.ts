import { ApplicationFailure } from '@temporalio/common';
import type { WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { createFleetActivities } from '../../activities/fleet/fleet-hosts';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { dataConverterFor } from '../../lib/temporal';
import { sealSecret, unsealSecret } from '../../lib/sealed-secret';
import { FailureType, workflowIds, type SshTarget } from '../../workflows/contracts';
import type { onboardFleet } from '../../workflows/fleet/onboard-fleet';
import { compactMembers } from '../../workflows/fleet/members';
import { fleetMembersQuery, fleetStatusQuery, retryFleetUpdate, closeFleetUpdate, type FleetDefaults, type FleetStatus } from '../../workflows/fleet/messages';
import { hostStatusQuery } from '../../workflows/host/messages';
import { eventually, uniqueName } from '../support/stack';
import { useWorkflowTestEnv } from '../support/workflow-env';

// Fleets on a real dev server: the real fleet activities start real host entities (signal-with-start), whose
// onboarding activities are fakes that fail by address. Bounded concurrency, counts, retry with corrections, a
// failed install resumed from its failed step, a host in two fleets, closing.
jest.setTimeout(120_000);
const keyring = Keyring.forTests('onboard-fleet');
const env = useWorkflowTestEnv(keyring);
const KEY = 'SHA256:' + 'A'.repeat(43);

type Fakes = Record<string, (...args: any[]) => Promise<unknown>>;

/** Host fakes: `.13` is unreachable, `.12` refuses any password but "right", `.14` fails its first install. */
function hostFakes(calls: string[], inFlight: { now: number; max: number }): Fakes {
  const installs = new Map<string, number>();
  const rec = (name: string, result: (arg: any) => unknown) => async (arg: any) => {
    calls.push(`${name}:${arg?.hostId ?? arg?.target?.address ?? ''}`);
    return result(arg);
  };
  return {
    probeHost: async ({ target }: { target: SshTarget }) => {
      calls.push(`probe:${target.address}`);
      inFlight.now++;
      inFlight.max = Math.max(inFlight.max, inFlight.now);
      try {
        await new Promise((r) => setTimeout(r, 150));
        if (target.address.endsWith('.13')) throw ApplicationFailure.create({ type: FailureType.HostUnreachable, message: `${target.address}:22 unreachable`, nonRetryable: true });
        const pw = target.credential.password ? unsealSecret(keyring, target.credential.password) : '';
        if (target.address.endsWith('.12') && pw !== 'right') throw ApplicationFailure.create({ type: FailureType.AuthFailed, message: 'password refused', nonRetryable: true, details: [{ hop: 'target', hostKeySha256: KEY }] });
        return { hostKeySha256: KEY, facts: { hostname: 'h', os: 'debian', osVersion: '12', arch: 'x86_64', initSystem: 'none', python3: '3.11', cpus: 1, memoryMiB: 512, diskRootGiB: 5 } };
      } finally {
        inFlight.now--;
      }
    },
    createCloudroot: rec('cloudroot', () => ({ username: 'cloudroot', publicKey: 'ssh-ed25519 AAAA', privateKey: sealSecret(keyring, 'k') })),
    installAgent: rec('install', (arg) => {
      const n = (installs.get(arg.hostId) ?? 0) + 1;
      installs.set(arg.hostId, n);
      if (arg.target.address.endsWith('.14') && n === 1) throw ApplicationFailure.create({ type: FailureType.AnsibleFailed, message: 'task "install telegraf" failed', nonRetryable: true });
      return { ok: 1, changed: 0, failed: 0, unreachable: 0, telegrafVersion: '1.39.3', agentStartedAtMs: 1, outputUrl: 'http://10.0.0.1:8086' };
    }),
    verifyMetrics: rec('verify', () => ({ pointsSeen: 1, lastPointAtMs: 2 })),
    releaseTunnel: rec('release-tunnel', () => ({ remaining: 0, stopping: true })),
    uninstallAgent: rec('uninstall', () => ({ ok: 1, changed: 1 })),
    removeCloudroot: rec('remove-cloudroot', () => ({ removed: true, alreadyGone: false, verified: 'login-refused', notes: [] })),
  };
}

const defaults: FleetDefaults = {
  target: { address: '', port: 22, credential: { username: 'boot', password: sealSecret(keyring, 'wrong-for-12') } },
  dataPath: { kind: 'direct', influxUrl: 'http://10.0.0.1:8086' },
  agent: { mode: 'artifact' },
  timing: { probeBudgetMs: 3000 },
};

function members(prefix: string, lastOctets: number[]) {
  return compactMembers(defaults, lastOctets.map((o) => ({ ...defaults, hostId: `${prefix}-${o}`, target: { ...defaults.target, address: `10.213.7.${o}` } })));
}

async function withWorker<T>(acts: Fakes, fn: (tq: string) => Promise<T>): Promise<T> {
  const taskQueue = uniqueName('fleet-wf');
  const fleetActs = createFleetActivities({ keyring, influx: { url: 'http://127.0.0.1:1', token: 'x', org: 'x', bucket: 'x' }, temporal: { client: env.client, tunnelTaskQueue: taskQueue, hostTaskQueue: taskQueue }, log: createLogger('fleet-test') });
  const worker = await Worker.create({ connection: env.connection, taskQueue, workflowBundle: env.bundle, activities: { ...acts, ...fleetActs }, dataConverter: dataConverterFor(keyring), maxConcurrentActivityTaskExecutions: 50 });
  return worker.runUntil(fn(taskQueue));
}

function settled(h: WorkflowHandle, pick: (s: FleetStatus) => boolean = () => true): Promise<FleetStatus> {
  return eventually(async () => {
    const s = await h.query(fleetStatusQuery);
    return s.state === 'settled' && pick(s) ? s : undefined;
  }, 90_000, 100);
}

describe('onboardFleet (dev server, real fleet activities, fake host activities)', () => {
  it('bounded concurrency; counts per phase; retry with a corrected password fixes the waiting host and nothing that succeeded runs again', async () => {
    const calls: string[] = [];
    const inFlight = { now: 0, max: 0 };
    await withWorker(hostFakes(calls, inFlight), async (tq) => {
      const fleetId = uniqueName('fl');
      const p = uniqueName('m');
      const h = await env.client.workflow.start<typeof onboardFleet>('onboardFleet', {
        taskQueue: tq,
        workflowId: workflowIds.fleet(fleetId),
        args: [{ fleetId, defaults, members: members(p, [1, 2, 3, 4, 5, 12, 13]), concurrency: 2 }, { publishEveryMs: 100 }],
      });
      const first = await settled(h, (s) => (s.counts.healthy ?? 0) === 5);
      expect(first.counts).toEqual({ healthy: 5, 'needs-credentials': 1, failed: 1 });
      expect(first.failures).toEqual({ HostUnreachable: 1 });
      expect(inFlight.max).toBeLessThanOrEqual(2);
      const page = await h.query(fleetMembersQuery, { phase: 'failed' });
      expect(page.items.map((i) => i.hostId)).toEqual([`${p}-13`]);
      expect(page.items[0].error?.type).toBe(FailureType.HostUnreachable);

      // The memo the API reads says the same (it is written at most every publishEveryMs, so shortly after).
      await eventually(async () => ((await h.describe()).memo?.status as FleetStatus | undefined)?.counts.healthy === 5, 10_000, 100);

      calls.length = 0;
      const accepted = await h.executeUpdate(retryFleetUpdate, { args: [{ corrections: { credential: { username: 'boot', password: sealSecret(keyring, 'right') } } }] });
      expect(accepted.hosts).toBe(2);
      const second = await settled(h, (s) => (s.counts.healthy ?? 0) === 6 && s.retries[0]?.endedAtMs !== undefined && s.counts.failed === 1);
      expect(second.counts).toEqual({ healthy: 6, failed: 1 });
      // Only the two retried hosts ran anything: the waiting one went on with the new password, the unreachable one probed again.
      const ran = new Set(calls.map((c) => c.split(':')[1]));
      expect([...ran].sort()).toEqual([`10.213.7.12`, `10.213.7.13`, `${p}-12`].sort());
      const retried = await env.client.workflow.getHandle(workflowIds.host(`${p}-12`)).query(hostStatusQuery);
      expect(retried.phase).toBe('healthy');
      expect(retried.fleets).toEqual([fleetId]);

      // Nothing left to retry but the unreachable host; asking for a healthy one is refused by the validator.
      await expect(h.executeUpdate(retryFleetUpdate, { args: [{ hostIds: [`${p}-1`] }] })).rejects.toMatchObject({ cause: { message: expect.stringMatching(/nothing to retry/) } });
      await h.executeUpdate(closeFleetUpdate, { args: [{}] });
      expect((await h.result()).state).toBe('closed');
      const host = await env.client.workflow.getHandle(workflowIds.host(`${p}-1`)).query(hostStatusQuery);
      expect(host.phase).toBe('healthy');
      expect(host.fleets ?? []).toEqual([]);
    });
  });

  it('a failed install is retried from its failed step (no probe or cloudroot again); a host in two fleets is one host', async () => {
    const calls: string[] = [];
    await withWorker(hostFakes(calls, { now: 0, max: 0 }), async (tq) => {
      const p = uniqueName('r');
      const a = uniqueName('fa');
      const b = uniqueName('fb');
      const start = (fleetId: string, octets: number[]) =>
        env.client.workflow.start<typeof onboardFleet>('onboardFleet', { taskQueue: tq, workflowId: workflowIds.fleet(fleetId), args: [{ fleetId, defaults, members: members(p, octets), concurrency: 4 }, { publishEveryMs: 100 }] });
      const fa = await start(a, [14, 1]);
      const firstA = await settled(fa, (s) => s.counts.failed === 1 && s.counts.healthy === 1);
      expect(firstA.failures).toEqual({ AnsibleFailed: 1 });
      // The second fleet shares host .1: it joins the running entity, which tells it where it is.
      const fb = await start(b, [1]);
      const firstB = await settled(fb, (s) => s.counts.healthy === 1);
      expect(firstB.total).toBe(1);
      expect(calls.filter((c) => c === 'probe:10.213.7.1')).toHaveLength(1);

      calls.length = 0;
      await fa.executeUpdate(retryFleetUpdate, { args: [{}] });
      await settled(fa, (s) => s.counts.healthy === 2);
      expect(calls).toEqual([`install:${p}-14`, `verify:${p}-14`]);
      const host = await env.client.workflow.getHandle(workflowIds.host(`${p}-14`)).query(hostStatusQuery);
      expect(host.onboardingRetries).toBe(1);
      expect(host.onboarding?.steps.map((s) => `${s.step}:${s.status}:${s.attempts}`)).toEqual(['probe:succeeded:1', 'cloudroot:succeeded:1', 'install-agent:succeeded:1', 'verify:succeeded:1']);
      const shared = await env.client.workflow.getHandle(workflowIds.host(`${p}-1`)).query(hostStatusQuery);
      expect([...(shared.fleets ?? [])].sort()).toEqual([a, b].sort());
      for (const f of [fa, fb]) await f.executeUpdate(closeFleetUpdate, { args: [{ offboard: f === fb }] });
      // Closing fleet b with offboard offboards its member, the shared host.
      await eventually(async () => (await env.client.workflow.getHandle(workflowIds.host(`${p}-1`)).query(hostStatusQuery)).phase === 'offboarded', 30_000, 100);
    });
  });
});
