import { NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError, WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { bundleWorkflows } from '../../apps/worker/bundle';
import { Keyring } from '../../lib/keyring';
import { dataConverterFor } from '../../lib/temporal';
import { sealSecret } from '../../lib/sealed-secret';
import { FailureType, workflowIds, type OnboardHostInput, type OnboardingStatus } from '../../workflows/contracts';
import { approveHostKeyUpdate, onboardingStatusQuery, provideCredentialsUpdate } from '../../workflows/messages';
import { eventually, testClient, testStack, uniqueName } from '../support/stack';

const keyring = Keyring.forTests();
const KEY_A = 'SHA256:' + 'A'.repeat(43);
const KEY_B = 'SHA256:' + 'B'.repeat(43);

let bundle: WorkflowBundleWithSourceMap;
let connection: NativeConnection;
let client: Client;

beforeAll(async () => {
  [bundle, connection, client] = await Promise.all([
    bundleWorkflows(),
    NativeConnection.connect({ address: testStack().temporalAddress }),
    testClient(keyring),
  ]);
});
afterAll(async () => {
  await connection?.close();
  await client?.connection.close();
});

type Fakes = Record<string, (...args: any[]) => Promise<unknown>>;

function happyActivities(overrides: Partial<Fakes> = {}): Fakes {
  return {
    probeHost: async () => ({
      hostKeySha256: KEY_A,
      facts: { hostname: 'h', os: 'debian', osVersion: '12', arch: 'x86_64', initSystem: 'none', python3: '3.11', cpus: 2, memoryMiB: 1024, diskRootGiB: 10 },
    }),
    createCloudroot: async () => ({ username: 'cloudroot', publicKey: 'ssh-ed25519 AAAA', privateKey: sealSecret(keyring, 'PRIVATE') }),
    installAgent: async () => ({ ok: 10, changed: 5, failed: 0, unreachable: 0, telegrafVersion: '1.39.3', agentStartedAtMs: 1, outputUrl: 'x' }),
    authorizeForwardKey: async (i: any) => ({
      username: i.target.credential.username, publicKey: 'ssh-ed25519 BBBB', privateKey: sealSecret(keyring, 'FORWARD'), permitListen: `${i.listen.address}:${i.listen.port}`,
    }),
    ensureTunnel: async () => ({ connected: true, openConnections: 0, totalConnections: 0, bytesIn: 0, bytesOut: 0, reconnects: 0 }),
    releaseTunnel: async () => ({ remaining: 0, stopping: true }),
    verifyMetrics: async () => ({ pointsSeen: 3, lastPointAtMs: 2 }),
    ...overrides,
  };
}

function input(hostId: string, over: Partial<OnboardHostInput> = {}): OnboardHostInput {
  return {
    hostId,
    target: { address: '10.213.9.9', port: 22, credential: { username: 'boot', password: sealSecret(keyring, 'pw') } },
    dataPath: { kind: 'direct', influxUrl: 'http://10.213.9.1:8086' },
    agent: { mode: 'artifact' },
    timing: { probeBudgetMs: 3000 },
    ...over,
  };
}

async function withWorker<T>(activities: Fakes, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = uniqueName('onboard-wf');
  const worker = await Worker.create({ connection, taskQueue, workflowBundle: bundle, activities, dataConverter: dataConverterFor(keyring) });
  return worker.runUntil(fn(taskQueue));
}

function start(taskQueue: string, inp: OnboardHostInput) {
  return client.workflow.start('onboardHost', {
    taskQueue,
    workflowId: workflowIds.onboarding(inp.hostId + '-' + taskQueue),
    args: [inp],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
}

const phaseOf = async (h: WorkflowHandle) => (await h.query(onboardingStatusQuery)).phase;

describe('onboardHost workflow (dev server, fake activities)', () => {
  it('walks the phases to healthy and records a step timeline (tunnel data path)', async () => {
    const seen: string[] = [];
    const acts = happyActivities({
      ensureTunnel: async (spec: any) => {
        seen.push(`tunnel ${spec.tunnelId} ${spec.bind.address}:${spec.bind.port} key=${spec.ssh.hostKeySha256} user=${spec.ssh.credential.username}`);
        return { connected: true };
      },
      installAgent: async (i: any) => {
        seen.push(`install ${i.outputUrl} user=${i.target.credential.username} password=${!!i.target.credential.password}`);
        return happyActivities().installAgent();
      },
    });
    const result = await withWorker(acts, async (tq) => {
      const h = await start(tq, input(uniqueName('h'), { dataPath: { kind: 'tunnel' } }));
      return (await h.result()) as OnboardingStatus;
    });
    expect(result.phase).toBe('healthy');
    expect(result.steps.map((s) => `${s.step}:${s.status}`)).toEqual([
      'probe:succeeded', 'cloudroot:succeeded', 'forward-key:succeeded', 'install-agent:succeeded', 'tunnel:succeeded', 'verify:succeeded',
    ]);
    expect(result.hostKeySha256).toBe(KEY_A);
    expect(result.verified?.pointsSeen).toBe(3);
    // After cloudroot only the per-host key is used; Telegraf writes to the forward's local end.
    expect(seen[0]).toBe('install http://127.0.0.1:18086 user=cloudroot password=false');
    expect(seen[1]).toMatch(/^tunnel .+ 127\.0\.0\.1:18086 key=SHA256:A+ user=cloudroot$/);
  });

  it('one onboarding per host: a second start with the same id joins the running one', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    await withWorker(happyActivities({ installAgent: async () => (await gate, happyActivities().installAgent()) }), async (tq) => {
      const inp = input(uniqueName('h'));
      const a = await start(tq, inp);
      const b = await start(tq, inp);
      expect(b.firstExecutionRunId).toBe(a.firstExecutionRunId);
      release();
      expect(((await a.result()) as OnboardingStatus).phase).toBe('healthy');
    });
  });

  it('wrong password parks in needs-credentials; new credentials resume the same run', async () => {
    const acts = happyActivities({
      probeHost: async (i: any) => {
        if (i.target.credential.username !== 'fixed') throw ApplicationFailure.create({ type: FailureType.AuthFailed, message: 'auth refused', nonRetryable: true });
        return happyActivities().probeHost();
      },
    });
    await withWorker(acts, async (tq) => {
      const h = await start(tq, input(uniqueName('h')));
      await eventually(async () => (await phaseOf(h)) === 'needs-credentials');
      const status = await h.query(onboardingStatusQuery);
      expect(status.lastError?.type).toBe('AuthFailed');
      await expect(h.executeUpdate(provideCredentialsUpdate, { args: [{ username: 'x' } as any] })).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
      await h.executeUpdate(provideCredentialsUpdate, { args: [{ username: 'fixed', password: sealSecret(keyring, 'right') }] });
      const result = (await h.result()) as OnboardingStatus;
      expect(result.phase).toBe('healthy');
      expect(result.steps[0].attempts).toBe(2);
      // Approving a host key while not waiting for one is refused by the validator.
      await expect(h.executeUpdate(approveHostKeyUpdate, { args: [{ hostKeySha256: KEY_A }] })).rejects.toThrow();
    });
  });

  it('a changed host key during install parks for approval; only the offered key is accepted', async () => {
    let approvedWith: string | undefined;
    const acts = happyActivities({
      installAgent: async (i: any) => {
        if (i.target.hostKeySha256 !== KEY_B) {
          throw ApplicationFailure.create({ type: FailureType.HostKeyMismatch, message: 'host key changed', nonRetryable: true, details: [{ expected: KEY_A, offered: KEY_B }] });
        }
        approvedWith = i.target.hostKeySha256;
        return happyActivities().installAgent();
      },
    });
    await withWorker(acts, async (tq) => {
      const h = await start(tq, input(uniqueName('h')));
      await eventually(async () => (await phaseOf(h)) === 'needs-host-key-approval');
      expect((await h.query(onboardingStatusQuery)).offeredHostKeySha256).toBe(KEY_B);
      await expect(h.executeUpdate(approveHostKeyUpdate, { args: [{ hostKeySha256: KEY_A }] })).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
      await h.executeUpdate(approveHostKeyUpdate, { args: [{ hostKeySha256: KEY_B }] });
      const result = (await h.result()) as OnboardingStatus;
      expect(result.phase).toBe('healthy');
      expect(result.hostKeySha256).toBe(KEY_B);
    });
    expect(approvedWith).toBe(KEY_B);
  });

  it('retries a flaky step and fails with a named reason on a non-retryable one', async () => {
    let probes = 0;
    const acts = happyActivities({
      probeHost: async () => {
        if (++probes < 3) throw ApplicationFailure.create({ type: FailureType.HostUnreachable, message: 'connect ECONNREFUSED' });
        return happyActivities().probeHost();
      },
      installAgent: async () => {
        throw ApplicationFailure.create({ type: FailureType.AnsibleFailed, message: 'task "copy telegraf" failed', nonRetryable: true });
      },
    });
    const err = await withWorker(acts, async (tq) => {
      const h = await start(tq, input(uniqueName('h'), { timing: { probeBudgetMs: 30_000 } }));
      return h.result().then(() => undefined, (e) => e);
    });
    expect(probes).toBe(3);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('AnsibleFailed');
    const status = cause.details?.[0] as OnboardingStatus;
    expect(status.phase).toBe('failed');
    expect(status.steps.find((s) => s.step === 'install-agent')?.error?.message).toContain('copy telegraf');
  });

  it('an unreachable host fails HostUnreachable once the probe budget is spent', async () => {
    const acts = happyActivities({
      probeHost: async () => {
        throw ApplicationFailure.create({ type: FailureType.HostUnreachable, message: 'connect EHOSTUNREACH' });
      },
    });
    const err = await withWorker(acts, async (tq) => {
      const h = await start(tq, input(uniqueName('h'), { timing: { probeBudgetMs: 2500 } }));
      return h.result().then(() => undefined, (e) => e);
    });
    expect(((err as WorkflowFailedError).cause as ApplicationFailure).type).toBe('HostUnreachable');
  });
});
