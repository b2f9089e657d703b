import { ApplicationFailure } from '@temporalio/common';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { Keyring } from '../../lib/keyring';
import { dataConverterFor } from '../../lib/temporal';
import { sealSecret } from '../../lib/sealed-secret';
import { FailureType, type OnboardHostInput } from '../../workflows/contracts';
import type { hostLifecycle, HostLifecycleOptions } from '../../workflows/host/host-lifecycle';
import { approveRepairHostKeyUpdate, hostFreshnessSignal, hostStatusQuery, offboardHostUpdate, type HostStatus } from '../../workflows/host/messages';
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

function start(tq: string, hostId = uniqueName('h')): Promise<WorkflowHandle<typeof hostLifecycle>> {
  return env.client.workflow.start<typeof hostLifecycle>('hostLifecycle', { taskQueue: tq, workflowId: `host/${hostId}`, args: [input(hostId), FAST] });
}

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

  it('stale points → degraded/NoRecentPoints → repaired (tunnel, role, verify) → healthy; a fresh report alone heals too', async () => {
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
      expect(repaired.repairs.at(-1)).toMatchObject({ reason: 'NoRecentPoints', outcome: 'repaired' });
      expect(calls).toEqual(['tunnel', 'install', 'verify']);
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
    let installs = 0;
    const acts = fakes(calls, {
      installAgent: async (i: any) => {
        pins.push(i.target.hostKeySha256);
        if (++installs === 2) throw ApplicationFailure.create({ type: FailureType.HostKeyMismatch, message: 'changed', nonRetryable: true, details: [{ expected: KEY_A, offered: KEY_B }] });
        return { ok: 1, changed: 0, failed: 0, unreachable: 0, telegrafVersion: '1.39.3', agentStartedAtMs: 1, outputUrl: 'x' };
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
    expect(pins).toEqual([KEY_A, KEY_A, KEY_B]);
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
});
