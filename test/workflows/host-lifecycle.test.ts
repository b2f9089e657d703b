import { ApplicationFailure } from '@temporalio/common';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { Keyring } from '../../lib/keyring';
import { dataConverterFor } from '../../lib/temporal';
import { sealSecret } from '../../lib/sealed-secret';
import { FailureType, type OnboardHostInput } from '../../workflows/contracts';
import type { hostLifecycle, HostLifecycleOptions } from '../../workflows/host/host-lifecycle';
import {
  approveRepairHostKeyUpdate,
  changeHostUpdate,
  hostFreshnessSignal,
  hostStatusQuery,
  offboardHostUpdate,
  provideRepairCredentialsUpdate,
  rotateKeyUpdate,
  tunnelReportSignal,
  type HostStatus,
} from '../../workflows/host/messages';
import { eventually, uniqueName } from '../support/stack';
import { useWorkflowTestEnv } from '../support/workflow-env';

// The host entity on a real dev server with fake activities: every path through its state table that a test can
// drive — onboarding to healthy, stale → degraded → repaired, repairs that fail and back off, a changed host key
// during repair, offboarding from healthy, during repair and during install (compensations), a failed onboarding.

const keyring = Keyring.forTests('host-lifecycle');
const env = useWorkflowTestEnv(keyring);
const KEY_A = 'SHA256:' + 'A'.repeat(43);
const KEY_B = 'SHA256:' + 'B'.repeat(43);
const FAST: HostLifecycleOptions = { repairBackoffMs: 200, maxRepairBackoffMs: 400, repairVerifyDeadlineMs: 1000 };

type Fakes = Record<string, (...args: any[]) => Promise<unknown>>;

function fakes(calls: string[], over: Partial<Fakes> = {}): Fakes {
  const rec = (name: string, result: unknown) => async (...args: any[]) => {
    calls.push(name);
    void args;
    return result;
  };
  return {
    probeHost: rec('probe', { hostKeySha256: KEY_A, facts: { hostname: 'h', os: 'debian', osVersion: '12', arch: 'x86_64', initSystem: 'none', python3: '3.11', cpus: 1, memoryMiB: 512, diskRootGiB: 5 } }),
    createCloudroot: rec('cloudroot', { username: 'cloudroot', publicKey: 'ssh-ed25519 AAAA', privateKey: sealSecret(keyring, 'k') }),
    authorizeForwardKey: rec('forward-key', { username: 'cloudroot', publicKey: 'ssh-ed25519 BBBB', privateKey: sealSecret(keyring, 'f'), permitListen: '127.0.0.1:18086' }),
    installAgent: rec('install', { ok: 1, changed: 0, failed: 0, unreachable: 0, telegrafVersion: '1.39.3', agentStartedAtMs: 1, outputUrl: 'http://127.0.0.1:18086' }),
    ensureTunnel: rec('tunnel', { connected: true, openConnections: 0, totalConnections: 0, bytesIn: 0, bytesOut: 0, reconnects: 0 }),
    verifyMetrics: rec('verify', { pointsSeen: 1, lastPointAtMs: 2 }),
    releaseTunnel: rec('release-tunnel', { remaining: 0, stopping: true }),
    uninstallAgent: rec('uninstall', { ok: 1, changed: 1 }),
    removeCloudroot: rec('remove-cloudroot', { removed: true, alreadyGone: false, verified: 'login-refused', notes: [] }),
    revokeForwardKey: rec('revoke-forward-key', { removed: true }),
    checkAgent: rec('check-agent', { manager: 'supervisor', running: true, state: 'supervised pid 42', restarted: false, checkedAtMs: 1 }),
    addCloudrootKey: rec('add-key', { username: 'cloudroot', privateKey: sealSecret(keyring, 'k2'), publicKeySha256: KEY_B }),
    retireCloudrootKeys: rec('retire-keys', { removed: 1 }),
    ...over,
  };
}

const input = (hostId: string): OnboardHostInput => ({
  hostId,
  target: { address: '10.213.99.5', port: 22, credential: { username: 'boot', password: sealSecret(keyring, 'pw') } },
  dataPath: { kind: 'tunnel' },
  agent: { mode: 'artifact' },
  timing: { probeBudgetMs: 5000 },
});

async function withWorker<T>(acts: Fakes, fn: (tq: string) => Promise<T>): Promise<T> {
  const taskQueue = uniqueName('host-wf');
  const worker = await Worker.create({ connection: env.connection, taskQueue, workflowBundle: env.bundle, activities: acts, dataConverter: dataConverterFor(keyring) });
  return worker.runUntil(fn(taskQueue));
}

function start(tq: string, hostId = uniqueName('h'), options: HostLifecycleOptions = {}): Promise<WorkflowHandle<typeof hostLifecycle>> {
  return env.client.workflow.start<typeof hostLifecycle>('hostLifecycle', { taskQueue: tq, workflowId: `host/${hostId}`, args: [input(hostId), { ...FAST, ...options }] });
}

/** The status once `pick` says it is the one. */
function until(h: WorkflowHandle, pick: (s: HostStatus) => boolean, timeoutMs = 30_000): Promise<HostStatus> {
  return eventually(async () => {
    const s = await h.query(hostStatusQuery);
    return pick(s) ? s : undefined;
  }, timeoutMs, 50);
}

const refusedKey = () =>
  ApplicationFailure.create({
    type: FailureType.HostKeyMismatch,
    message: 'host key of 10.213.99.5:22 is B, expected A',
    nonRetryable: true,
    details: [{ expected: KEY_A, offered: KEY_B, address: '10.213.99.5', port: 22, hop: 'target' }],
  });

async function phase(h: WorkflowHandle, want: string, timeoutMs = 30_000): Promise<HostStatus> {
  return eventually(async () => {
    const s = await h.query(hostStatusQuery);
    return s.phase === want ? s : undefined;
  }, timeoutMs, 50);
}

const fresh = (isFresh: boolean) => ({ fresh: isFresh, lastPointAtMs: isFresh ? Date.now() : Date.now() - 600_000, sweptAtMs: Date.now() });

describe('hostLifecycle (dev server, fake activities)', () => {
  it('onboards as its first stage, mirrors the onboarding phases, ends healthy; offboard undoes every step', async () => {
    const calls: string[] = [];
    await withWorker(fakes(calls), async (tq) => {
      const h = await start(tq);
      const healthy = await phase(h, 'healthy');
      expect(healthy.onboarding?.phase).toBe('healthy');
      expect(JSON.stringify(healthy)).not.toContain('sealed'); // the service login stays inside the workflow
      await h.executeUpdate(offboardHostUpdate);
      const done = await h.result();
      expect(done.phase).toBe('offboarded');
      expect(done.notCleaned).toEqual([]);
      await expect(h.executeUpdate(offboardHostUpdate)).rejects.toThrow();
    });
    expect(calls).toEqual(['probe', 'cloudroot', 'forward-key', 'install', 'tunnel', 'verify', 'release-tunnel', 'uninstall', 'remove-cloudroot']);
  });

  it('stale points → degraded/NoRecentPoints → repaired (tunnel, agent check, verify) → healthy', async () => {
    const calls: string[] = [];
    await withWorker(fakes(calls), async (tq) => {
      const h = await start(tq);
      await phase(h, 'healthy');
      calls.length = 0;
      await h.signal(hostFreshnessSignal, fresh(false));
      const repaired = await eventually(async () => {
        const s = await h.query(hostStatusQuery);
        return s.phase === 'healthy' && s.repairs.some((r) => r.outcome === 'repaired') ? s : undefined;
      });
      expect(repaired.repairs.at(-1)).toMatchObject({ reason: 'NoRecentPoints', outcome: 'repaired', action: 'ensure the tunnel, check the agent, verify fresh points' });
      expect(repaired.agentHealth).toMatchObject({ running: true });
      expect(calls).toEqual(['tunnel', 'check-agent', 'verify']);
      await h.terminate('done');
    });
  });

  it('a repair that fails stays degraded with backoff; offboarding during repair still cleans up', async () => {
    const calls: string[] = [];
    let verifies = 0;
    const acts = fakes(calls, {
      verifyMetrics: async () => {
        calls.push('verify');
        if (++verifies === 1) return { pointsSeen: 1, lastPointAtMs: 2 }; // onboarding
        throw ApplicationFailure.create({ type: FailureType.NoPoints, message: 'still no points', nonRetryable: true });
      },
    });
    await withWorker(acts, async (tq) => {
      const h = await start(tq);
      await phase(h, 'healthy');
      await h.signal(hostFreshnessSignal, fresh(false));
      const degraded = await eventually(async () => {
        const s = await h.query(hostStatusQuery);
        return s.repairs.filter((r) => r.action === 'verify fresh points').length >= 2 ? s : undefined;
      });
      expect(['degraded', 'repairing']).toContain(degraded.phase);
      expect(degraded.repairs.every((r) => r.outcome === 'failed')).toBe(true);
      await h.executeUpdate(offboardHostUpdate);
      const done = await h.result();
      expect(done.phase).toBe('offboarded');
    });
    expect(calls.slice(-3)).toEqual(['release-tunnel', 'uninstall', 'remove-cloudroot']);
  });

  it('a changed host key during repair waits for approval, then repairs with the new pin', async () => {
    const pins: Array<string | undefined> = [];
    const calls: string[] = [];
    let checks = 0;
    const acts = fakes(calls, {
      checkAgent: async (i: any) => {
        pins.push(i.target.hostKeySha256);
        if (++checks === 1) throw ApplicationFailure.create({ type: FailureType.HostKeyMismatch, message: 'changed', nonRetryable: true, details: [{ expected: KEY_A, offered: KEY_B }] });
        return { manager: 'supervisor', running: true, state: 'supervised', restarted: false, checkedAtMs: 1 };
      },
    });
    await withWorker(acts, async (tq) => {
      const h = await start(tq);
      await phase(h, 'healthy');
      await h.signal(hostFreshnessSignal, fresh(false));
      await phase(h, 'needs-host-key-approval');
      await expect(h.executeUpdate(approveRepairHostKeyUpdate, { args: [{ hostKeySha256: 'nope' }] })).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
      await h.executeUpdate(approveRepairHostKeyUpdate, { args: [{ hostKeySha256: KEY_B }] });
      await phase(h, 'healthy');
      await h.terminate('done');
    });
    expect(pins).toEqual([KEY_A, KEY_B]);
  });

  it('offboarding during install cancels the onboarding and undoes what it did', async () => {
    const calls: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const acts = fakes(calls, {
      installAgent: async () => {
        calls.push('install');
        await gate; // hangs until the test ends it; cancellation is not heartbeated in this fake
        return { ok: 1, changed: 0, failed: 0, unreachable: 0, telegrafVersion: '1.39.3', agentStartedAtMs: 1, outputUrl: 'x' };
      },
    });
    await withWorker(acts, async (tq) => {
      const h = await start(tq);
      await phase(h, 'installing-agent');
      await h.executeUpdate(offboardHostUpdate);
      release();
      const done = await h.result();
      expect(done.phase).toBe('offboarded');
    });
    // The cloudroot exists (the child reported it): it is removed; the agent is uninstalled in case it got far.
    expect(calls).toEqual(expect.arrayContaining(['uninstall', 'remove-cloudroot']));
    expect(calls.indexOf('remove-cloudroot')).toBeGreaterThan(calls.indexOf('install'));
  });

  it('a failed onboarding shows failed, and can still be offboarded', async () => {
    const calls: string[] = [];
    const acts = fakes(calls, {
      installAgent: async () => {
        throw ApplicationFailure.create({ type: FailureType.AnsibleFailed, message: 'task failed', nonRetryable: true });
      },
    });
    await withWorker(acts, async (tq) => {
      const h = await start(tq);
      const failed = await phase(h, 'failed');
      expect(failed.onboarding?.lastError?.type).toBe('AnsibleFailed');
      await h.executeUpdate(offboardHostUpdate);
      expect((await h.result()).phase).toBe('offboarded');
    });
    expect(calls).toContain('remove-cloudroot');
  });

  it('an agent found stopped is started over SSH; one that will not run gets the role again', async () => {
    const calls: string[] = [];
    let checks = 0;
    const acts = fakes(calls, {
      checkAgent: async () => {
        calls.push('check-agent');
        checks++;
        return checks === 1
          ? { manager: 'systemd', running: true, state: 'active/running', restarted: true, checkedAtMs: 1 }
          : { manager: 'systemd', running: false, state: 'failed/failed', lastError: 'E! [outputs.influxdb_v2] 401', restarted: true, checkedAtMs: 2 };
      },
    });
    await withWorker(acts, async (tq) => {
      const h = await start(tq);
      await phase(h, 'healthy');
      calls.length = 0;
      await h.signal(hostFreshnessSignal, fresh(false));
      const first = await until(h, (s) => s.phase === 'healthy' && s.repairs.length === 1);
      expect(first.repairs[0].action).toBe('ensure the tunnel, check the agent: started Telegraf, verify fresh points');
      expect(calls).toEqual(['tunnel', 'check-agent', 'verify']);
      calls.length = 0;
      await h.signal(hostFreshnessSignal, fresh(false));
      const second = await until(h, (s) => s.phase === 'healthy' && s.repairs.length === 2);
      expect(second.agentHealth).toMatchObject({ running: false, lastError: 'E! [outputs.influxdb_v2] 401' });
      expect(calls).toEqual(['tunnel', 'check-agent', 'install', 'verify']);
      await h.terminate('done');
    });
  });

  it('a tunnel reported down degrades the host only after its grace, then the keeper is restarted', async () => {
    const calls: string[] = [];
    const tunnelOpts: any[] = [];
    const acts = fakes(calls, {
      ensureTunnel: async (_spec: unknown, o: unknown) => {
        calls.push('tunnel');
        tunnelOpts.push(o);
        return { connected: true, openConnections: 0, totalConnections: 0, bytesIn: 0, bytesOut: 0, reconnects: 0 };
      },
    });
    await withWorker(acts, async (tq) => {
      const h = await start(tq, uniqueName('h'), { tunnelDownGraceMs: 1500 });
      const healthy = await phase(h, 'healthy');
      calls.length = 0;
      const tunnelId = healthy.onboarding!.tunnelId!;
      // A blip: down and back within the grace is no outage.
      await h.signal(tunnelReportSignal, { tunnelId, state: 'down', atMs: Date.now(), error: { type: 'TunnelFailed', message: 'session closed' } });
      await h.signal(tunnelReportSignal, { tunnelId, state: 'connected', atMs: Date.now() });
      // Another keeper's report is not this host's business.
      await h.signal(tunnelReportSignal, { tunnelId: 'someone-else', state: 'refused', atMs: Date.now(), error: { type: 'AuthFailed', message: 'x' } });
      await new Promise((r) => setTimeout(r, 2000));
      expect((await h.query(hostStatusQuery)).phase).toBe('healthy');
      expect(calls).toEqual([]);
      await h.signal(tunnelReportSignal, { tunnelId, state: 'down', atMs: Date.now(), error: { type: 'TunnelFailed', message: 'keepalive timeout' } });
      expect((await h.query(hostStatusQuery)).tunnel).toMatchObject({ state: 'down', error: { message: 'keepalive timeout' } });
      // (degraded/TunnelDown lasts only as long as the fake repair: its record says why, the phase may be past it)
      const repaired = await until(h, (s) => s.phase === 'healthy' && s.repairs.length === 1);
      expect(repaired.repairs[0]).toMatchObject({ reason: 'TunnelDown', action: 'restart the tunnel, verify fresh points', outcome: 'repaired' });
      expect(repaired.tunnel?.state).toBe('connected');
      expect(tunnelOpts.at(-1)).toMatchObject({ restart: true });
      expect(calls).toEqual(['tunnel', 'verify']);
      await h.terminate('done');
    });
  });

  it('the keeper refused a changed host key: degraded/HostKeyMismatch → needs-host-key-approval → approve → healthy, new pin everywhere', async () => {
    const calls: string[] = [];
    const specs: any[] = [];
    let tunnels = 0;
    const acts = fakes(calls, {
      ensureTunnel: async (spec: unknown) => {
        calls.push('tunnel');
        specs.push(spec);
        if (++tunnels === 2) throw refusedKey();
        return { connected: true, openConnections: 0, totalConnections: 0, bytesIn: 0, bytesOut: 0, reconnects: 0 };
      },
    });
    await withWorker(acts, async (tq) => {
      const h = await start(tq);
      const healthy = await phase(h, 'healthy');
      const tunnelId = healthy.onboarding!.tunnelId!;
      await h.signal(tunnelReportSignal, { tunnelId, state: 'refused', atMs: Date.now(), error: { type: 'HostKeyMismatch', message: 'changed' }, offered: KEY_B });
      const waiting = await phase(h, 'needs-host-key-approval');
      expect(waiting).toMatchObject({ waitingOn: 'target', offeredHostKeySha256: KEY_B });
      expect(waiting.reason).toBeUndefined();
      expect(waiting.repairs.slice(-2)).toMatchObject([
        { reason: 'HostKeyMismatch', outcome: 'failed', action: 'ensure the tunnel' },
        { reason: 'HostKeyMismatch', outcome: 'waiting', action: `wait for a host-key approval (the target offers ${KEY_B})` },
      ]);
      // Changes and other hops' approvals wait; only the offered key is accepted.
      await expect(h.executeUpdate(changeHostUpdate, { args: [{ interval: '30s' }] })).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
      const refusal = (p: Promise<unknown>) => p.then(() => 'accepted', (e: WorkflowUpdateFailedError) => String(e.cause?.message));
      expect(await refusal(h.executeUpdate(approveRepairHostKeyUpdate, { args: [{ hostKeySha256: KEY_A }] }))).toMatch(/does not match/);
      expect(await refusal(h.executeUpdate(approveRepairHostKeyUpdate, { args: [{ hostKeySha256: KEY_B, hop: 'bastion' }] }))).toMatch(/target is waiting/);
      await h.executeUpdate(approveRepairHostKeyUpdate, { args: [{ hostKeySha256: KEY_B }] });
      const repaired = await until(h, (s) => s.phase === 'healthy' && s.repairs.some((r) => r.outcome === 'repaired'));
      expect(repaired.onboarding?.hostKeySha256).toBe(KEY_B);
      expect(repaired.repairs.at(-1)).toMatchObject({ outcome: 'repaired', action: "pin the target's new key, ensure the tunnel, check the agent, verify fresh points" });
      expect(repaired.waitingOn).toBeUndefined();
      expect(repaired.tunnel?.state).toBe('connected');
      await h.executeUpdate(offboardHostUpdate);
      await h.result();
    });
    expect(specs.at(-1).ssh.hostKeySha256).toBe(KEY_B);
  });

  it('a refused forward key is issued again before the tunnel is restarted', async () => {
    const calls: string[] = [];
    const specs: any[] = [];
    const acts = fakes(calls, {
      ensureTunnel: async (spec: unknown) => {
        calls.push('tunnel');
        specs.push(spec);
        return { connected: true, openConnections: 0, totalConnections: 0, bytesIn: 0, bytesOut: 0, reconnects: 0 };
      },
      authorizeForwardKey: async () => {
        calls.push('forward-key');
        return { username: 'cloudroot', publicKey: 'ssh-ed25519 CCCC', privateKey: sealSecret(keyring, `f${calls.length}`), permitListen: '127.0.0.1:18086' };
      },
    });
    await withWorker(acts, async (tq) => {
      const h = await start(tq);
      const healthy = await phase(h, 'healthy');
      calls.length = 0;
      await h.signal(tunnelReportSignal, { tunnelId: healthy.onboarding!.tunnelId!, state: 'refused', atMs: Date.now(), error: { type: 'AuthFailed', message: 'key refused' } });
      const repaired = await until(h, (s) => s.phase === 'healthy' && s.repairs.length === 1);
      expect(repaired.repairs[0]).toMatchObject({ reason: 'TunnelDown', action: 're-authorize the forward key, restart the tunnel, verify fresh points' });
      await h.terminate('done');
    });
    expect(calls).toEqual(['forward-key', 'tunnel', 'verify']);
    expect(specs[1].ssh.credential.privateKey).not.toEqual(specs[0].ssh.credential.privateKey);
  });

  it('PATCH-style change: applied when verified with the new labels; rolled back when not; failed when neither', async () => {
    const calls: string[] = [];
    const installs: any[] = [];
    const verifies: any[] = [];
    let failVerifyFor: string | undefined;
    let failAll = false;
    const acts = fakes(calls, {
      installAgent: async (i: any) => {
        calls.push('install');
        installs.push({ labels: i.labels, agent: i.agent });
        return { ok: 1, changed: 1, failed: 0, unreachable: 0, telegrafVersion: '1.39.3', agentStartedAtMs: 5000, outputUrl: 'http://127.0.0.1:18086' };
      },
      verifyMetrics: async (v: any) => {
        calls.push('verify');
        verifies.push(v);
        if (failAll || (failVerifyFor && v.tags?.env === failVerifyFor)) throw ApplicationFailure.create({ type: FailureType.NoPoints, message: 'no points with it', nonRetryable: true });
        return { pointsSeen: 3, lastPointAtMs: 6000 };
      },
    });
    await withWorker(acts, async (tq) => {
      const h = await start(tq);
      await phase(h, 'healthy');
      installs.length = 0;
      verifies.length = 0;
      // Refused before anything runs: bad input, nothing to change.
      for (const bad of [{}, { labels: { env: '{{ lookup("pipe","id") }}' } }, { interval: '10 s' }, { agentVersion: '1.2.3' }, { agentMode: 'rpm' }, { labels: { host_id: 'x' } }, { nope: 1 }]) {
        await expect(h.executeUpdate(changeHostUpdate, { args: [bad as any] })).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
      }
      const { changeId } = await h.executeUpdate(changeHostUpdate, { args: [{ labels: { env: 'prod' }, interval: '20s' }] });
      const applied = await until(h, (s) => s.phase === 'healthy' && s.changes?.at(-1)?.id === changeId && !!s.changes.at(-1)?.endedAtMs);
      expect(applied.changes!.at(-1)).toMatchObject({ kind: 'change', outcome: 'applied', change: { labels: { env: 'prod' }, interval: '20s' } });
      expect(applied.labels).toEqual({ env: 'prod' });
      expect(applied.agentConfig).toMatchObject({ mode: 'artifact', interval: '20s' });
      expect(installs).toEqual([{ labels: { env: 'prod' }, agent: { mode: 'artifact', interval: '20s' } }]);
      expect(verifies[0]).toMatchObject({ tags: { env: 'prod' }, sinceMs: 4000 });

      installs.length = 0;
      failVerifyFor = 'staging';
      const second = await h.executeUpdate(changeHostUpdate, { args: [{ labels: { env: 'staging' } }] });
      const rolled = await until(h, (s) => s.changes?.at(-1)?.id === second.changeId && !!s.changes.at(-1)?.endedAtMs);
      expect(rolled.changes!.at(-1)).toMatchObject({ outcome: 'rolled-back', error: expect.stringContaining('NoPoints') });
      expect(rolled.phase).toBe('healthy');
      expect(rolled.labels).toEqual({ env: 'prod' });
      expect(installs.map((i) => i.labels)).toEqual([{ env: 'staging' }, { env: 'prod' }]);

      failAll = true;
      const third = await h.executeUpdate(changeHostUpdate, { args: [{ interval: '1m' }] });
      const failed = await until(h, (s) => s.changes?.at(-1)?.id === third.changeId && !!s.changes.at(-1)?.endedAtMs);
      expect(failed.changes!.at(-1)).toMatchObject({ outcome: 'failed', error: expect.stringContaining('rollback: NoPoints') });
      expect(failed.phase).not.toBe('healthy');
      expect(failed.reason).toBe('AgentDown');
      await h.terminate('done');
    });
  });

  it('rotate-key: the new key is added and proven, then the rest retired; every later step logs in with it', async () => {
    const calls: string[] = [];
    const targets: any[] = [];
    const acts = fakes(calls, {
      retireCloudrootKeys: async (i: any) => {
        calls.push('retire-keys');
        targets.push(i);
        return { removed: 1 };
      },
      uninstallAgent: async (i: any) => {
        calls.push('uninstall');
        targets.push(i);
        return { ok: 1, changed: 1 };
      },
    });
    await withWorker(acts, async (tq) => {
      const h = await start(tq);
      await phase(h, 'healthy');
      calls.length = 0;
      const { changeId } = await h.executeUpdate(rotateKeyUpdate);
      const done = await until(h, (s) => s.phase === 'healthy' && s.changes?.at(-1)?.id === changeId && !!s.changes.at(-1)?.endedAtMs);
      expect(done.changes!.at(-1)).toMatchObject({ kind: 'rotate-key', outcome: 'applied' });
      expect(JSON.stringify(done)).not.toContain('sealed');
      await h.executeUpdate(offboardHostUpdate);
      await h.result();
    });
    expect(calls.slice(0, 2)).toEqual(['add-key', 'retire-keys']);
    expect(targets[0].keepPublicKeySha256).toBe(KEY_B);
    expect(targets[0].target.credential.privateKey).toEqual(targets[1].target.credential.privateKey);
    expect(targets[1].target.credential.privateKey).not.toEqual(sealSecret(keyring, 'k'));
  });

  it('continues as new with its state: a long-lived host keeps its service login, changes and repairs', async () => {
    const calls: string[] = [];
    await withWorker(fakes(calls), async (tq) => {
      const h = await start(tq, uniqueName('h'), { historyEventsPerRun: 60 });
      await phase(h, 'healthy');
      const firstRun = (await h.describe()).runId;
      for (let i = 0; i < 6; i++) {
        await h.signal(hostFreshnessSignal, fresh(i % 2 === 1));
        await new Promise((r) => setTimeout(r, 300));
      }
      const moved = await eventually(async () => {
        const d = await env.client.workflow.getHandle(h.workflowId).describe();
        return d.runId !== firstRun ? d : undefined;
      });
      expect(moved.status.name).toBe('RUNNING');
      const h2 = env.client.workflow.getHandle<typeof hostLifecycle>(h.workflowId);
      const carried = await until(h2, (s) => s.phase === 'healthy');
      expect(carried.onboarding?.phase).toBe('healthy');
      expect(carried.repairs.length).toBeGreaterThan(0);
      calls.length = 0;
      await h2.executeUpdate(offboardHostUpdate);
      expect((await h2.result()).phase).toBe('offboarded');
    });
    expect(calls).toEqual(['release-tunnel', 'uninstall', 'remove-cloudroot']);
  });

  it('cloudroot\'s key refused during a repair: needs-credentials → a bootstrap login recreates cloudroot → repaired', async () => {
    const calls: string[] = [];
    const targets: any[] = [];
    let checks = 0;
    const acts = fakes(calls, {
      checkAgent: async (i: any) => {
        calls.push('check-agent');
        targets.push(i.target.credential);
        if (++checks === 1) {
          throw ApplicationFailure.create({ type: FailureType.AuthFailed, message: 'authentication failed on 10.213.99.5:22', nonRetryable: true, details: [{ address: '10.213.99.5', port: 22, hop: 'target', hostKeySha256: KEY_A }] });
        }
        return { manager: 'supervisor', running: true, state: 'supervised', restarted: false, checkedAtMs: 1 };
      },
      createCloudroot: async (i: any) => {
        calls.push('cloudroot');
        targets.push(i.target.credential);
        return { username: 'cloudroot', publicKey: 'ssh-ed25519 AAAA', privateKey: sealSecret(keyring, `k${calls.length}`) };
      },
    });
    await withWorker(acts, async (tq) => {
      const h = await start(tq);
      await phase(h, 'healthy');
      calls.length = 0;
      targets.length = 0;
      await h.signal(hostFreshnessSignal, fresh(false));
      const waiting = await phase(h, 'needs-credentials');
      expect(waiting.waitingOn).toBe('target');
      const why = (p: Promise<unknown>) => p.then(() => 'accepted', (e: WorkflowUpdateFailedError) => String(e.cause?.message));
      expect(await why(h.executeUpdate(provideRepairCredentialsUpdate, { args: [{ username: 'root', password: { sealed: 'plain' } } as any] }))).toMatch(/sealed/);
      expect(await why(h.executeUpdate(provideRepairCredentialsUpdate, { args: [{ username: 'root', password: sealSecret(keyring, 'pw2') }, { hop: 'bastion' }] }))).toMatch(/target is waiting/);
      await h.executeUpdate(provideRepairCredentialsUpdate, { args: [{ username: 'root', password: sealSecret(keyring, 'pw2') }] });
      const repaired = await until(h, (s) => s.phase === 'healthy' && s.repairs.some((r) => r.outcome === 'repaired'));
      expect(repaired.waitingOn).toBeUndefined();
      expect(repaired.repairs.map((r) => r.outcome)).toEqual(['failed', 'waiting', 'repaired']);
      expect(repaired.repairs.at(-1)?.action).toBe('recreate cloudroot, ensure the tunnel, check the agent, verify fresh points');
      expect(repaired.repairsLastHour).toBe(2); // waits are not repairs
      await h.terminate('done');
    });
    expect(calls).toEqual(['tunnel', 'check-agent', 'cloudroot', 'tunnel', 'check-agent', 'verify']);
    expect(targets[1].username).toBe('root'); // the bootstrap login, for createCloudroot only
    expect(targets[2].username).toBe('cloudroot');
    expect(targets[2].privateKey).not.toEqual(targets[0].privateKey); // the recreated key
  });

  it('a degraded host can be changed (the change may be the fix); an offboard during a change runs after it', async () => {
    const calls: string[] = [];
    let verifies = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let installs = 0;
    const acts = fakes(calls, {
      verifyMetrics: async (v: any) => {
        calls.push('verify');
        verifies++;
        if (verifies > 1 && !v.tags) throw ApplicationFailure.create({ type: FailureType.NoPoints, message: 'none', nonRetryable: true });
        return { pointsSeen: 1, lastPointAtMs: 2 };
      },
      installAgent: async () => {
        calls.push('install');
        if (++installs === 4) await gate; // the second change hangs until released
        return { ok: 1, changed: 1, failed: 0, unreachable: 0, telegrafVersion: '1.39.3', agentStartedAtMs: 5000, outputUrl: 'x' };
      },
    });
    await withWorker(acts, async (tq) => {
      const h = await start(tq, uniqueName('h'), { repairBackoffMs: 60_000, maxRepairBackoffMs: 60_000 });
      await phase(h, 'healthy');
      await h.signal(hostFreshnessSignal, fresh(false));
      await until(h, (s) => s.phase === 'degraded' && s.repairs.length > 0);
      const first = await h.executeUpdate(changeHostUpdate, { args: [{ labels: { env: 'fix' } }] });
      const fixed = await until(h, (s) => s.changes?.at(-1)?.id === first.changeId && !!s.changes.at(-1)?.outcome);
      expect(fixed).toMatchObject({ phase: 'healthy' });
      expect(fixed.changes!.at(-1)?.outcome).toBe('applied');
      const second = await h.executeUpdate(changeHostUpdate, { args: [{ labels: { env: 'later' } }] });
      await until(h, (s) => s.phase === 'changing');
      // One change at a time; an offboard is taken and runs once the change has ended.
      await expect(h.executeUpdate(rotateKeyUpdate)).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
      await h.executeUpdate(offboardHostUpdate);
      expect((await h.query(hostStatusQuery)).phase).toBe('changing');
      release();
      const done = await h.result();
      expect(done.phase).toBe('offboarded');
      expect(done.changes!.find((c) => c.id === second.changeId)?.outcome).toBe('applied');
    });
    expect(calls.slice(-3)).toEqual(['release-tunnel', 'uninstall', 'remove-cloudroot']);
  });
});
