import { ApplicationFailure } from '@temporalio/common';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { Keyring } from '../../lib/keyring';
import { dataConverterFor } from '../../lib/temporal';
import { sealSecret } from '../../lib/sealed-secret';
import {
  FailureType, workflowIds, type OnboardHostInput, type OnboardingStatus,
} from '../../workflows/contracts';
import {
  approveHostKeyUpdate, detachTunnelHostUpdate, onboardingStatusQuery, provideCredentialsUpdate, tunnelStatusQuery, updateTunnelSpecUpdate,
} from '../../workflows/messages';
import type { tunnelKeeper } from '../../workflows/tunnel-keeper';
import { fakeTunnelSpec, holdsConnected } from '../support/fake-tunnel';
import { eventually, uniqueName } from '../support/stack';
import { useWorkflowTestEnv } from '../support/workflow-env';

// Findings about what the onboarding and keeper workflows accept and whom a failure is about: a real dev server,
// fake activities (the SSH side of the same findings runs on real hosts in forward-key.e2e.test.ts).

const keyring = Keyring.forTests('security-messages');
const env = useWorkflowTestEnv(keyring);
const KEY_HOST = 'SHA256:' + 'H'.repeat(43);
const KEY_BASTION = 'SHA256:' + 'B'.repeat(43);
const KEY_BASTION_NEW = 'SHA256:' + 'N'.repeat(43);

type Fakes = Record<string, (...args: any[]) => Promise<unknown>>;

const facts = { hostname: 'h', os: 'debian', osVersion: '12', arch: 'x86_64', initSystem: 'none', python3: '3.11', cpus: 2, memoryMiB: 1024, diskRootGiB: 10 };

function activities(over: Partial<Fakes> = {}): Fakes {
  return {
    probeHost: async (i: any) => ({ hostKeySha256: KEY_HOST, ...(i.target.via ? { viaHostKeySha256: KEY_BASTION } : {}), facts, peerAddress: '10.213.200.1' }),
    createCloudroot: async () => ({ username: 'cloudroot', publicKey: 'ssh-ed25519 AAAA', privateKey: sealSecret(keyring, 'SUDO-KEY') }),
    authorizeForwardKey: async (i: any) => ({
      username: i.target.credential.username, publicKey: 'ssh-ed25519 FFFF', privateKey: sealSecret(keyring, 'FORWARD-KEY'), permitListen: `${i.listen.address}:${i.listen.port}`,
    }),
    installAgent: async (i: any) => ({ ok: 1, changed: 1, failed: 0, unreachable: 0, telegrafVersion: '1.39.3', agentStartedAtMs: 1, outputUrl: i.outputUrl }),
    ensureTunnel: async () => ({ connected: true, openConnections: 0, totalConnections: 0, bytesIn: 0, bytesOut: 0, reconnects: 0 }),
    releaseTunnel: async () => ({ remaining: 0, stopping: true }),
    verifyMetrics: async () => ({ pointsSeen: 3, lastPointAtMs: 2 }),
    ...over,
  };
}

function hostInput(hostId: string, over: Partial<OnboardHostInput> = {}): OnboardHostInput {
  return {
    hostId,
    target: {
      address: '10.213.201.5',
      port: 22,
      credential: { username: 'boot', password: sealSecret(keyring, 'pw') },
      via: { address: '10.213.0.9', port: 2222, credential: { username: 'jump', password: sealSecret(keyring, 'jump-pw') } },
    },
    dataPath: { kind: 'direct', influxUrl: 'http://10.213.0.1:8086' },
    agent: { mode: 'artifact' },
    timing: { probeBudgetMs: 5000 },
    ...over,
  };
}

async function withWorker<T>(acts: Fakes, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = uniqueName('sec-wf');
  const worker = await Worker.create({ connection: env.connection, taskQueue, workflowBundle: env.bundle, activities: acts, dataConverter: dataConverterFor(keyring) });
  return worker.runUntil(fn(taskQueue));
}

const start = (taskQueue: string, inp: OnboardHostInput) =>
  env.client.workflow.start('onboardHost', { taskQueue, workflowId: workflowIds.onboarding(`${inp.hostId}-${taskQueue}`), args: [inp] });

async function waitPhase(h: WorkflowHandle, phase: string): Promise<OnboardingStatus> {
  return eventually(async () => {
    const s = await h.query(onboardingStatusQuery);
    return s.phase === phase ? s : undefined;
  });
}

const authFailed = (hop: 'target' | 'via', seen: Record<string, string> = {}) =>
  ApplicationFailure.create({ type: FailureType.AuthFailed, message: `auth refused on ${hop}`, nonRetryable: true, details: [{ address: 'x', port: 22, hop, ...seen }] });

describe('finding 6: bastion failures carry their hop', () => {
  it('a changed bastion key is approved into the bastion pin, not the target one', async () => {
    const probes: Array<{ target?: string; via?: string }> = [];
    const acts = activities({
      probeHost: async (i: any) => {
        probes.push({ target: i.target.hostKeySha256, via: i.target.via.hostKeySha256 });
        if (i.target.via.hostKeySha256 !== KEY_BASTION_NEW) {
          throw ApplicationFailure.create({
            type: FailureType.HostKeyMismatch, message: 'bastion key changed', nonRetryable: true,
            details: [{ expected: KEY_BASTION, offered: KEY_BASTION_NEW, address: '10.213.0.9', port: 2222, hop: 'via' }],
          });
        }
        return { hostKeySha256: KEY_HOST, viaHostKeySha256: KEY_BASTION_NEW, facts };
      },
    });
    await withWorker(acts, async (tq) => {
      const inp = hostInput(uniqueName('h'));
      inp.target.via!.hostKeySha256 = KEY_BASTION;
      const h = await start(tq, inp);
      const waiting = await waitPhase(h, 'needs-host-key-approval');
      expect(waiting.waitingOn).toBe('bastion');
      expect(waiting.offeredHostKeySha256).toBe(KEY_BASTION_NEW);
      // Naming the wrong hop is refused before anything is written.
      await expect(h.executeUpdate(approveHostKeyUpdate, { args: [{ hostKeySha256: KEY_BASTION_NEW, hop: 'target' }] })).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
      const res = await h.executeUpdate(approveHostKeyUpdate, { args: [{ hostKeySha256: KEY_BASTION_NEW }] });
      expect(res.hop).toBe('bastion');
      const done = (await h.result()) as OnboardingStatus;
      expect(done.phase).toBe('healthy');
      expect(done.hostKeySha256).toBe(KEY_HOST);
      expect(done.bastionHostKeySha256).toBe(KEY_BASTION_NEW);
    });
    // Before the fix the approved bastion key went into the target's pin and the probe looped on the old bastion key.
    expect(probes.at(-1)).toEqual({ target: undefined, via: KEY_BASTION_NEW });
    expect(probes.map((p) => p.target)).not.toContain(KEY_BASTION_NEW);
  });

  it('a refused bastion login waits for bastion credentials and keeps the host login', async () => {
    const logins: string[] = [];
    const acts = activities({
      probeHost: async (i: any) => {
        logins.push(`${i.target.credential.username}/${i.target.via.credential.username}`);
        if (i.target.via.credential.username !== 'jump-fixed') throw authFailed('via', { hostKeySha256: KEY_BASTION });
        return { hostKeySha256: KEY_HOST, viaHostKeySha256: KEY_BASTION, facts };
      },
    });
    await withWorker(acts, async (tq) => {
      const h = await start(tq, hostInput(uniqueName('h')));
      const waiting = await waitPhase(h, 'needs-credentials');
      expect(waiting.waitingOn).toBe('bastion');
      // Trust on first use happened once: the bastion key seen before the refusal is pinned now.
      expect(waiting.bastionHostKeySha256).toBe(KEY_BASTION);
      await expect(
        h.executeUpdate(provideCredentialsUpdate, { args: [{ username: 'jump-fixed', password: sealSecret(keyring, 'x') }, { hop: 'target' }] }),
      ).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
      const res = await h.executeUpdate(provideCredentialsUpdate, { args: [{ username: 'jump-fixed', password: sealSecret(keyring, 'x') }] });
      expect(res.hop).toBe('bastion');
      expect(((await h.result()) as OnboardingStatus).phase).toBe('healthy');
    });
    expect(logins).toEqual(['boot/jump', 'boot/jump-fixed']);
  });
});

describe('finding 7: credentials updates accept only sealed secrets', () => {
  it.each([
    ['plaintext password', { username: 'admin', password: 'hunter2' }],
    ['plaintext key', { username: 'admin', privateKey: '-----BEGIN OPENSSH PRIVATE KEY-----' }],
    ['object that is not a seal', { username: 'admin', password: { sealed: 'hunter2' } }],
    ['extra field', { username: 'admin', password: sealSecret(keyring, 'x'), note: 'hunter2' }],
    ['plaintext passphrase', { username: 'admin', privateKey: sealSecret(keyring, 'k'), passphrase: 'hunter2' }],
    ['both secrets', { username: 'admin', password: sealSecret(keyring, 'x'), privateKey: sealSecret(keyring, 'k') }],
  ])('rejects %s before it reaches history', async (_name, credential) => {
    const acts = activities({ probeHost: async () => { throw authFailed('target'); } });
    await withWorker(acts, async (tq) => {
      const h = await start(tq, hostInput(uniqueName('h'), { target: { address: '10.213.201.6', port: 22, credential: { username: 'boot', password: sealSecret(keyring, 'pw') } } }));
      await waitPhase(h, 'needs-credentials');
      await expect(h.executeUpdate(provideCredentialsUpdate, { args: [credential as any] })).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
      // A rejected update leaves no trace in history: the plaintext is nowhere in it.
      const history = JSON.stringify(await h.fetchHistory());
      expect(history).not.toContain('hunter2');
      await h.terminate('test done');
    });
  });
});

describe('finding 8: trust on first use happens once', () => {
  it('the host key seen at a refused login is pinned and checked at the next try', async () => {
    const pins: Array<string | undefined> = [];
    let calls = 0;
    const acts = activities({
      probeHost: async (i: any) => {
        pins.push(i.target.hostKeySha256);
        if (++calls === 1) throw authFailed('target', { hostKeySha256: KEY_HOST });
        return { hostKeySha256: KEY_HOST, facts };
      },
    });
    await withWorker(acts, async (tq) => {
      const h = await start(tq, hostInput(uniqueName('h'), { target: { address: '10.213.201.7', port: 22, credential: { username: 'boot', password: sealSecret(keyring, 'pw') } } }));
      const waiting = await waitPhase(h, 'needs-credentials');
      expect(waiting.hostKeySha256).toBe(KEY_HOST);
      await h.executeUpdate(provideCredentialsUpdate, { args: [{ username: 'boot', password: sealSecret(keyring, 'right') }] });
      expect(((await h.result()) as OnboardingStatus).phase).toBe('healthy');
    });
    // First contact captures (no pin); the second already expects the key seen the first time.
    expect(pins).toEqual([undefined, KEY_HOST]);
  });
});

describe('finding 2: a proxy forward binds the proxy\'s private address, never 0.0.0.0', () => {
  it('without a bind address the forward listens on the address the host sees the bastion at', async () => {
    const seen: string[] = [];
    const acts = activities({
      authorizeForwardKey: async (i: any) => {
        seen.push(`key ${i.target.address}:${i.target.port} as ${i.target.credential.username} listen ${i.listen.address}:${i.listen.port} hop ${i.hop}`);
        return activities().authorizeForwardKey(i);
      },
      installAgent: async (i: any) => {
        seen.push(`install ${i.outputUrl}`);
        return activities().installAgent(i);
      },
      ensureTunnel: async (spec: any, opts: any) => {
        seen.push(`tunnel ${spec.tunnelId} bind ${spec.bind.address}:${spec.bind.port} as ${spec.ssh.credential.username} host ${opts.hostId}`);
        return activities().ensureTunnel();
      },
    });
    await withWorker(acts, async (tq) => {
      const inp = hostInput(uniqueName('h'));
      inp.dataPath = { kind: 'proxy', proxy: inp.target.via! };
      const done = (await (await start(tq, inp)).result()) as OnboardingStatus;
      expect(done.phase).toBe('healthy');
    });
    expect(seen).toEqual([
      'key 10.213.0.9:2222 as jump listen 10.213.200.1:18086 hop via',
      'install http://10.213.200.1:18086',
      expect.stringMatching(/^tunnel proxy-10\.213\.0\.9-p2222 bind 10\.213\.200\.1:18086 as jump host h-/),
    ]);
  });

  it('IPv6 bind addresses are bracketed in Telegraf\'s URL', async () => {
    const urls: string[] = [];
    const acts = activities({
      installAgent: async (i: any) => {
        urls.push(i.outputUrl);
        return activities().installAgent(i);
      },
    });
    await withWorker(acts, async (tq) => {
      const inp = hostInput(uniqueName('h'));
      inp.dataPath = { kind: 'proxy', proxy: inp.target.via!, bindAddress: 'fd00:213::1' };
      await (await start(tq, inp)).result();
    });
    expect(urls).toEqual(['http://[fd00:213::1]:18086']);
  });

  it('a failed onboarding detaches its host from the tunnel', async () => {
    const released: unknown[] = [];
    const acts = activities({
      releaseTunnel: async (i: any) => (released.push(i), { remaining: 0, stopping: true }),
      verifyMetrics: async () => {
        throw ApplicationFailure.create({ type: FailureType.NoPoints, message: 'no points', nonRetryable: true });
      },
    });
    const hostId = uniqueName('h');
    await withWorker(acts, async (tq) => {
      const inp = hostInput(hostId, { dataPath: { kind: 'tunnel' } });
      await expect((await start(tq, inp)).result()).rejects.toThrow();
    });
    expect(released).toEqual([{ tunnelId: hostId, hostId }]);
  });
});

describe('findings 2 and 3: the keeper follows its spec and stops with its last host', () => {
  const fakeHold = (log: string[]) => ({ holdReverseForward: holdsConnected((spec) => log.push(spec.ssh.credential.username)) });

  it('a new spec restarts the forward with it; the last detach stops the keeper', async () => {
    const holds: string[] = [];
    const taskQueue = uniqueName('sec-keeper');
    const worker = await Worker.create({
      connection: env.connection, taskQueue, workflowBundle: env.bundle, activities: fakeHold(holds), dataConverter: dataConverterFor(keyring),
    });
    await worker.runUntil(async () => {
      const tunnelId = uniqueName('t');
      const spec = fakeTunnelSpec(keyring, tunnelId, '10.213.250.3', { heartbeatMs: 200, maxBackoffMs: 300 });
      const h = await env.client.workflow.start<typeof tunnelKeeper>('tunnelKeeper', {
        taskQueue, workflowId: workflowIds.tunnel(tunnelId), args: [spec, { leases: 0, hosts: ['a'] }],
      });
      await eventually(async () => holds.length === 1);
      // Re-onboarding hands over a new key: before the fix the keeper kept the old one and failed at its next reconnect.
      const next = { ...spec, ssh: { ...spec.ssh, credential: { username: 'forward-2', privateKey: sealSecret(keyring, 'NEW') } } };
      expect(await h.executeUpdate(updateTunnelSpecUpdate, { args: [{ spec: next, hostId: 'b' }] })).toEqual({ changed: true, hosts: 2 });
      await eventually(async () => holds.length === 2);
      expect(holds).toEqual(['cloudroot', 'forward-2']);
      // The same spec again changes nothing.
      expect(await h.executeUpdate(updateTunnelSpecUpdate, { args: [{ spec: next, hostId: 'b' }] })).toEqual({ changed: false, hosts: 2 });
      expect(await h.executeUpdate(detachTunnelHostUpdate, { args: [{ hostId: 'a' }] })).toEqual({ remaining: 1, stopping: false });
      expect((await h.query(tunnelStatusQuery)).state).not.toBe('stopped');
      expect(await h.executeUpdate(detachTunnelHostUpdate, { args: [{ hostId: 'b' }] })).toEqual({ remaining: 0, stopping: true });
      await h.result();
      expect((await h.describe()).status.name).toBe('COMPLETED');
    });
  });

  it('a keeper from before hosts were counted never stops on a detach', async () => {
    const taskQueue = uniqueName('sec-keeper');
    const worker = await Worker.create({
      connection: env.connection, taskQueue, workflowBundle: env.bundle, activities: fakeHold([]), dataConverter: dataConverterFor(keyring),
    });
    await worker.runUntil(async () => {
      const tunnelId = uniqueName('t');
      const h = await env.client.workflow.start<typeof tunnelKeeper>('tunnelKeeper', {
        taskQueue, workflowId: workflowIds.tunnel(tunnelId), args: [fakeTunnelSpec(keyring, tunnelId, '10.213.250.4', { heartbeatMs: 200 }), { leases: 0 }],
      });
      expect(await h.executeUpdate(detachTunnelHostUpdate, { args: [{ hostId: 'a' }] })).toEqual({ remaining: -1, stopping: false });
      expect((await h.describe()).status.name).toBe('RUNNING');
      await h.terminate('test done');
    });
  });
});

describe('finding 10: activity timeouts cover their own inner bounds', () => {
  it('probe and cloudroot may run as long as their SSH steps can take, so a slow host is not tried twice at once', async () => {
    const hostId = uniqueName('h');
    const history = await withWorker(activities(), async (tq) => {
      // The default probe budget (5 min); the server caps startToClose at the budget (scheduleToClose).
      const h = await start(tq, hostInput(hostId, { timing: { probeBudgetMs: 5 * 60_000 } }));
      await h.result();
      return h.fetchHistory();
    });
    const seconds = (type: string) => {
      const e = history.events?.find((ev) => ev.activityTaskScheduledEventAttributes?.activityType?.name === type);
      return Number(e?.activityTaskScheduledEventAttributes?.startToCloseTimeout?.seconds ?? 0);
    };
    // probe: a 20 s ready timeout per hop (target + bastion) and a 60 s facts command.
    expect(seconds('probeHost')).toBeGreaterThanOrEqual(2 * 20 + 60);
    // cloudroot: two logins over two hops, a 30 s privilege check, a 120 s script, a 30 s sudo proof.
    expect(seconds('createCloudroot')).toBeGreaterThanOrEqual(4 * 20 + 30 + 120 + 30);
  });
});
