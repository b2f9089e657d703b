import { Context } from '@temporalio/activity';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { Keyring } from '../../lib/keyring';
import { sealSecret } from '../../lib/sealed-secret';
import {
  FailureType,
  workflowIds,
  type OnboardHostInput,
  type OnboardingStatus,
  type TunnelSpec,
  type TunnelStats,
} from '../../workflows/contracts';
import { approveHostKeyUpdate, detachTunnelHostUpdate, onboardingStatusQuery, provideCredentialsUpdate, restartTunnelUpdate, stopTunnelUpdate, tunnelStatusQuery, updateTunnelSpecUpdate } from '../../workflows/messages';
import { TunnelIdKey } from '../../workflows/search-attributes';
import type { hostLifecycle } from '../../workflows/host/host-lifecycle';
import { approveRepairHostKeyUpdate, changeHostUpdate, hostFreshnessSignal, hostStatusQuery, offboardHostUpdate, retryOnboardingUpdate, rotateKeyUpdate, tunnelReportSignal } from '../../workflows/host/messages';
import type { onboardFleet } from '../../workflows/fleet/onboard-fleet';
import type { FleetSource } from '../../workflows/fleet/source';
import { approveFleetPlanUpdate, closeFleetUpdate, fleetInventoryUpdate, fleetMemberSignal, fleetStatusQuery, retryFleetUpdate } from '../../workflows/fleet/messages';
import type { TunnelKeeperOptions, TunnelKeeperState, tunnelKeeper } from '../../workflows/tunnel-keeper';
import { connectedStats } from '../support/fake-tunnel';
import { until } from '../support/poll';

/**
 * Scripted runs of the workflows against a real server with fake activities whose results are fixed.
 * `scripts/record-histories.ts` records each one's history into `test/replay/histories/<name>.json`;
 * `replay.test.ts` replays those files against the current workflow code.
 *
 * Fixtures are encrypted like production histories, with a fixed test keyring committed for them.
 */
export const FIXTURE_KEYRING_LABEL = 'replay-fixtures';
export const fixtureKeyring = (): Keyring => Keyring.forTests(FIXTURE_KEYRING_LABEL);

/** Plaintexts the scenarios seal: the recorder checks none of them is readable in a fixture, even decoded. */
export const FIXTURE_SECRETS = ['replay-bootstrap-password', 'replay-jump-password', 'replay-jump-password-2', 'replay-second-password', 'replay-private-key', 'replay-forward-key', 'replay-private-key-2'];

export type CloseKind = 'completed' | 'failed' | 'continued-as-new';
export type Fakes = Record<string, (...args: any[]) => Promise<unknown>>;

/** A run to record: the first one goes to `<name>.json`, later ones (continue-as-new) to `<name>.run<N>.json`. */
export interface RecordedRun {
  runId: string;
  closesWith: CloseKind;
}

export interface ScenarioRun {
  activities: Fakes;
  /** Starts the workflow, drives it (updates) and returns the runs to record once all of them have closed. */
  drive(client: Client, taskQueue: string): Promise<RecordedRun[]>;
}

export interface Scenario {
  name: string;
  workflowType: 'onboardHost' | 'tunnelKeeper' | 'hostLifecycle' | 'onboardFleet';
  /** Fixed, so a fixture's workflow id is known at replay without storing it next to the history. */
  workflowId: string;
  about: string;
  prepare(keyring: Keyring): ScenarioRun;
}

// ---------------------------------------------------------------------------------------------------------
// small helpers

/** Waits until the execution chain has closed (result() follows continue-as-new); failing is an outcome too. */
async function closed(handle: WorkflowHandle): Promise<void> {
  await handle.result().catch(() => undefined);
}

/** The runs of a continue-as-new chain, from `firstRunId` on, read from each run's closing event. */
async function runChain(client: Client, workflowId: string, firstRunId: string, count: number): Promise<string[]> {
  const ids = [firstRunId];
  while (ids.length < count) {
    const history = await client.workflow.getHandle(workflowId, ids[ids.length - 1]).fetchHistory();
    const last = history.events?.[history.events.length - 1];
    const next = last?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId;
    if (!next) throw new Error(`run ${ids[ids.length - 1]} of ${workflowId} did not continue as new`);
    ids.push(next);
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------------------
// onboarding

const KEY_A = 'SHA256:' + 'A'.repeat(43);
const KEY_B = 'SHA256:' + 'B'.repeat(43);
const KEY_BASTION = 'SHA256:' + 'C'.repeat(43);
const FACTS = { hostname: 'replay-host', os: 'debian', osVersion: '12', arch: 'x86_64', initSystem: 'systemd', python3: '3.11.2', cpus: 2, memoryMiB: 2048, diskRootGiB: 20 } as const;

function onboardingFakes(keyring: Keyring, overrides: Fakes = {}): Fakes {
  return {
    probeHost: async (i: { target: { via?: unknown } }) => ({ hostKeySha256: KEY_A, ...(i.target.via ? { viaHostKeySha256: KEY_BASTION } : {}), facts: FACTS }),
    createCloudroot: async () => ({ username: 'cloudroot', publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIreplay cloudroot', privateKey: sealSecret(keyring, 'replay-private-key') }),
    installAgent: async (i: { outputUrl: string }) => ({ ok: 21, changed: 9, failed: 0, unreachable: 0, telegrafVersion: '1.34.0', agentStartedAtMs: 1_700_000_000_000, outputUrl: i.outputUrl }),
    authorizeForwardKey: async (i: { target: { credential: { username: string } }; listen: { address: string; port: number } }) => ({
      username: i.target.credential.username,
      publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIreplay-forward',
      privateKey: sealSecret(keyring, 'replay-forward-key'),
      permitListen: `${i.listen.address}:${i.listen.port}`,
    }),
    ensureTunnel: async () => ({ connected: true, boundPort: 18086, openConnections: 0, totalConnections: 0, bytesIn: 0, bytesOut: 0, reconnects: 0 }),
    releaseTunnel: async () => ({ remaining: 0, stopping: true }),
    uninstallAgent: async () => ({ ok: 5, changed: 4 }),
    removeCloudroot: async () => ({ removed: true, alreadyGone: false, verified: 'login-refused', notes: [] }),
    revokeForwardKey: async () => ({ removed: true }),
    verifyMetrics: async () => ({ pointsSeen: 12, lastPointAtMs: 1_700_000_010_000 }),
    checkAgent: async () => ({ manager: 'systemd', running: true, state: 'active/running', restarted: false, checkedAtMs: 1_700_000_000_000 }),
    addCloudrootKey: async () => ({ username: 'cloudroot', privateKey: sealSecret(keyring, 'replay-private-key-2'), publicKeySha256: KEY_B }),
    retireCloudrootKeys: async () => ({ removed: 1 }),
    ...overrides,
  };
}

function onboardingInput(keyring: Keyring, hostId: string, over: Partial<OnboardHostInput> = {}): OnboardHostInput {
  return {
    hostId,
    target: { address: '10.213.200.10', port: 22, credential: { username: 'bootstrap', password: sealSecret(keyring, 'replay-bootstrap-password') } },
    dataPath: { kind: 'direct', influxUrl: 'http://10.213.200.1:8086' },
    agent: { mode: 'artifact', interval: '10s' },
    labels: { env: 'replay' },
    timing: { probeBudgetMs: 30_000, verifyDeadlineMs: 30_000, tunnelConnectDeadlineMs: 30_000 },
    ...over,
  };
}

const phaseOf = async (h: WorkflowHandle) => ((await h.query(onboardingStatusQuery)) as OnboardingStatus).phase;

/** An onboarding scenario: start, optionally interact, wait for the run to close. */
function onboarding(
  name: string,
  about: string,
  opts: {
    input?: (keyring: Keyring, hostId: string) => Partial<OnboardHostInput>;
    fakes?: (keyring: Keyring) => Fakes;
    interact?: (handle: WorkflowHandle, keyring: Keyring) => Promise<void>;
    closesWith?: CloseKind;
  } = {},
): Scenario {
  const hostId = `replay-${name.replace(/^onboard-/, '')}`;
  const workflowId = workflowIds.onboarding(hostId);
  return {
    name,
    workflowType: 'onboardHost',
    workflowId,
    about,
    prepare(keyring) {
      return {
        activities: onboardingFakes(keyring, opts.fakes?.(keyring)),
        async drive(client, taskQueue) {
          const handle = await client.workflow.start('onboardHost', {
            taskQueue,
            workflowId,
            args: [onboardingInput(keyring, hostId, opts.input?.(keyring, hostId))],
            // Fixed ids: a leftover run from an interrupted recording must not block the next one.
            workflowIdConflictPolicy: 'TERMINATE_EXISTING',
            workflowExecutionTimeout: '5m',
          });
          await opts.interact?.(handle, keyring);
          await closed(handle);
          return [{ runId: handle.firstExecutionRunId, closesWith: opts.closesWith ?? 'completed' }];
        },
      };
    },
  };
}

const onboardingScenarios: Scenario[] = [
  onboarding('onboard-direct', 'healthy; the host writes to InfluxDB directly'),
  onboarding('onboard-tunnel', 'healthy; a remote forward on the host carries its writes', { input: () => ({ dataPath: { kind: 'tunnel' } }) }),
  onboarding('onboard-proxy', 'healthy; behind a bastion that also holds the forward for its network', {
    input: (keyring) => {
      const bastion = { address: '10.213.201.1', port: 22, credential: { username: 'jump', password: sealSecret(keyring, 'replay-jump-password') } };
      return {
        target: { address: '10.213.201.10', port: 22, credential: { username: 'bootstrap', password: sealSecret(keyring, 'replay-bootstrap-password') }, via: bastion },
        dataPath: { kind: 'proxy', proxy: bastion, bindAddress: '10.213.201.1' },
      };
    },
  }),
  onboarding('onboard-step-retried', 'probe fails twice (retryable HostUnreachable), then succeeds: retries add no events', {
    fakes: (keyring) => {
      let calls = 0;
      return {
        probeHost: async (i: { target: { via?: unknown } }) => {
          if (++calls <= 2) throw ApplicationFailure.create({ type: FailureType.HostUnreachable, message: 'connect ECONNREFUSED (scripted)' });
          return onboardingFakes(keyring).probeHost(i);
        },
      };
    },
  }),
  onboarding('onboard-needs-credentials', 'bootstrap password refused → needs-credentials → provideCredentials update → healthy', {
    fakes: (keyring) => ({
      probeHost: async (i: { target: { credential: { username: string }; via?: unknown } }) => {
        if (i.target.credential.username !== 'bootstrap2') throw ApplicationFailure.create({ type: FailureType.AuthFailed, message: 'authentication refused (scripted)', nonRetryable: true });
        return onboardingFakes(keyring).probeHost(i);
      },
    }),
    interact: async (handle, keyring) => {
      await until('phase needs-credentials', async () => (await phaseOf(handle)) === 'needs-credentials');
      await handle.executeUpdate(provideCredentialsUpdate, { args: [{ username: 'bootstrap2', password: sealSecret(keyring, 'replay-second-password') }] });
    },
  }),
  onboarding('onboard-host-key-approved', 'host key changes during install → needs-host-key-approval → approveHostKey update → healthy', {
    fakes: (keyring) => ({
      installAgent: async (i: { target: { hostKeySha256?: string }; outputUrl: string }) => {
        if (i.target.hostKeySha256 !== KEY_B) {
          throw ApplicationFailure.create({ type: FailureType.HostKeyMismatch, message: 'host key changed (scripted)', nonRetryable: true, details: [{ expected: KEY_A, offered: KEY_B }] });
        }
        return onboardingFakes(keyring).installAgent(i);
      },
    }),
    interact: async (handle) => {
      await until('phase needs-host-key-approval', async () => (await phaseOf(handle)) === 'needs-host-key-approval');
      await handle.executeUpdate(approveHostKeyUpdate, { args: [{ hostKeySha256: KEY_B }] });
    },
  }),
  onboarding('onboard-bastion-key-approved', 'the bastion refuses the login (its key pinned on the spot), then its key changes: both answered for the bastion hop', {
    input: (keyring) => ({
      target: {
        address: '10.213.201.11', port: 22, credential: { username: 'bootstrap', password: sealSecret(keyring, 'replay-bootstrap-password') },
        via: { address: '10.213.201.1', port: 22, credential: { username: 'jump', password: sealSecret(keyring, 'replay-jump-password') } },
      },
    }),
    fakes: () => {
      let calls = 0;
      return {
        probeHost: async (i: { target: { via?: { hostKeySha256?: string } } }) => {
          calls++;
          if (calls === 1) {
            throw ApplicationFailure.create({ type: FailureType.AuthFailed, message: 'bastion refused (scripted)', nonRetryable: true, details: [{ hop: 'via', hostKeySha256: KEY_BASTION }] });
          }
          if (i.target.via?.hostKeySha256 !== KEY_B) {
            throw ApplicationFailure.create({ type: FailureType.HostKeyMismatch, message: 'bastion key changed (scripted)', nonRetryable: true, details: [{ hop: 'via', expected: KEY_BASTION, offered: KEY_B }] });
          }
          return { hostKeySha256: KEY_A, viaHostKeySha256: KEY_B, facts: FACTS };
        },
      };
    },
    interact: async (handle, keyring) => {
      await until('phase needs-credentials', async () => (await phaseOf(handle)) === 'needs-credentials');
      await handle.executeUpdate(provideCredentialsUpdate, { args: [{ username: 'jump2', password: sealSecret(keyring, 'replay-jump-password-2') }, { hop: 'bastion' }] });
      await until('phase needs-host-key-approval', async () => (await phaseOf(handle)) === 'needs-host-key-approval');
      await handle.executeUpdate(approveHostKeyUpdate, { args: [{ hostKeySha256: KEY_B, hop: 'bastion' }] });
    },
  }),
  onboarding('onboard-tunnel-failed', 'the tunnel comes up but no points arrive → failed; the host detaches from its tunnel', {
    input: () => ({ dataPath: { kind: 'tunnel' } }),
    fakes: () => ({
      verifyMetrics: async () => {
        throw ApplicationFailure.create({ type: FailureType.NoPoints, message: 'no points (scripted)', nonRetryable: true });
      },
    }),
    closesWith: 'failed',
  }),
  onboarding('onboard-failed', 'install fails with non-retryable AnsibleFailed → phase failed, workflow failed', {
    fakes: () => ({
      installAgent: async () => {
        throw ApplicationFailure.create({ type: FailureType.AnsibleFailed, message: 'task "install telegraf" failed (scripted)', nonRetryable: true });
      },
    }),
    closesWith: 'failed',
  }),
];

// ---------------------------------------------------------------------------------------------------------
// tunnel keeper

type HoldPlan = (call: number) => 'fail' | 'refuse' | 'lease' | 'hold';

/** A holdReverseForward stand-in: fails, ends its lease at once, or holds (heartbeating) until cancelled. */
function fakeHold(plan: HoldPlan) {
  const state = { calls: 0, holding: 0 };
  async function holdReverseForward(spec: TunnelSpec): Promise<TunnelStats> {
    const ctx = Context.current();
    const call = ++state.calls;
    const what = plan(call);
    if (what === 'fail') throw ApplicationFailure.retryable(`remote port forwarding failed (scripted, call ${call})`, FailureType.TunnelFailed);
    if (what === 'refuse') {
      throw ApplicationFailure.create({
        type: FailureType.HostKeyMismatch,
        message: `host key of ${spec.ssh.address}:22 is ${KEY_B}, expected ${KEY_A} (scripted)`,
        nonRetryable: true,
        details: [{ expected: KEY_A, offered: KEY_B, address: spec.ssh.address, port: 22, hop: 'target' }],
      });
    }
    const stats = connectedStats(spec.bind.port, ctx.info.attempt, 1_700_000_000_000);
    if (what === 'lease') return stats;
    ctx.heartbeat(stats);
    const timer = setInterval(() => ctx.heartbeat(stats), 100);
    state.holding = call;
    try {
      await ctx.cancelled; // rejects when the keeper cancels (stop/restart)
      return stats;
    } finally {
      clearInterval(timer);
    }
  }
  return { activities: { holdReverseForward } as Fakes, state };
}

function tunnelSpec(keyring: Keyring, tunnelId: string): TunnelSpec {
  return {
    tunnelId,
    ssh: { address: '10.213.202.10', port: 22, credential: { username: 'cloudroot', privateKey: sealSecret(keyring, 'replay-private-key') }, hostKeySha256: KEY_A },
    bind: { address: '127.0.0.1', port: 18086 },
    target: { host: '127.0.0.1', port: 8086 },
    timing: { heartbeatMs: 200, maxBackoffMs: 300 },
  };
}

function tunnel(
  name: string,
  about: string,
  plan: HoldPlan,
  options: TunnelKeeperOptions,
  interact: (handle: WorkflowHandle<typeof tunnelKeeper>, state: { calls: number; holding: number }) => Promise<void>,
  runs: CloseKind[] = ['completed'],
  /** ensureTunnel starts keepers with their TunnelId; without it the keeper upserts it itself (another branch). */
  startWithTunnelId = true,
  initialState: TunnelKeeperState = { leases: 0 },
): Scenario {
  const tunnelId = `replay-${name.replace(/^tunnel-/, '')}`;
  const workflowId = workflowIds.tunnel(tunnelId);
  return {
    name,
    workflowType: 'tunnelKeeper',
    workflowId,
    about,
    prepare(keyring) {
      const fake = fakeHold(plan);
      return {
        activities: fake.activities,
        async drive(client, taskQueue) {
          const handle = await client.workflow.start<typeof tunnelKeeper>('tunnelKeeper', {
            taskQueue,
            workflowId,
            args: [tunnelSpec(keyring, tunnelId), initialState, options],
            typedSearchAttributes: startWithTunnelId ? [{ key: TunnelIdKey, value: tunnelId }] : [],
            workflowIdConflictPolicy: 'TERMINATE_EXISTING',
            workflowExecutionTimeout: '5m', // a broken recording must not leave a keeper running
          });
          await interact(handle, fake.state);
          await closed(handle); // follows continue-as-new to the last run
          const ids = await runChain(client, workflowId, handle.firstExecutionRunId, runs.length);
          return runs.map((closesWith, i) => ({ runId: ids[i], closesWith }));
        },
      };
    },
  };
}

const LONG_LEASE = { leaseMs: 60_000 };

const tunnelScenarios: Scenario[] = [
  tunnel('tunnel-reconnects', 'holdReverseForward fails retryably three times, then holds; stop', (call) => (call <= 3 ? 'fail' : 'hold'), LONG_LEASE, async (h, s) => {
    await until('the fourth attempt holding', () => s.holding === 4, 30_000, 50);
    await h.executeUpdate(stopTunnelUpdate);
  }),
  tunnel(
    'tunnel-stop',
    'started without its TunnelId (the keeper upserts it); holds; stop cancels the hold and completes the keeper',
    () => 'hold',
    LONG_LEASE,
    async (h, s) => {
      await until('the hold', () => s.holding === 1);
      await h.executeUpdate(stopTunnelUpdate);
    },
    ['completed'],
    false,
  ),
  tunnel('tunnel-restart', 'holds; restart cancels the hold and starts a fresh one; stop', () => 'hold', LONG_LEASE, async (h, s) => {
    await until('the first hold', () => s.holding === 1);
    await h.executeUpdate(restartTunnelUpdate);
    await until('the second hold', () => s.holding === 2);
    await h.executeUpdate(stopTunnelUpdate);
  }),
  tunnel(
    'tunnel-update-spec',
    'counts its hosts; a new spec restarts the hold with it; the same spec again changes nothing; the last detach stops it',
    () => 'hold',
    LONG_LEASE,
    async (h, s) => {
      await until('the first hold', () => s.holding === 1);
      const spec = { ...tunnelSpec(fixtureKeyring(), h.workflowId.replace(/^tunnel\//, '')), bind: { address: '127.0.0.1', port: 18087 } };
      await h.executeUpdate(updateTunnelSpecUpdate, { args: [{ spec, hostId: 'replay-b' }] });
      await until('the hold with the new spec', () => s.holding === 2);
      await h.executeUpdate(updateTunnelSpecUpdate, { args: [{ spec, hostId: 'replay-b' }] });
      await h.executeUpdate(detachTunnelHostUpdate, { args: [{ hostId: 'replay-a' }] });
      await h.executeUpdate(detachTunnelHostUpdate, { args: [{ hostId: 'replay-b' }] });
    },
    ['completed'],
    true,
    { leases: 0, hosts: ['replay-a'] },
  ),
  tunnel(
    'tunnel-refused',
    'the server refuses the forward (changed host key): the keeper parks and tells its host; a new spec with the new pin wakes it; stop',
    (call) => (call === 1 ? 'refuse' : 'hold'),
    LONG_LEASE,
    async (h, s) => {
      await until('parked', async () => (await h.query(tunnelStatusQuery)).state === 'refused');
      const spec = { ...tunnelSpec(fixtureKeyring(), 'replay-refused'), ssh: { ...tunnelSpec(fixtureKeyring(), 'replay-refused').ssh, hostKeySha256: KEY_B } };
      await h.executeUpdate(updateTunnelSpecUpdate, { args: [{ spec, hostId: 'replay-refused-host' }] });
      await until('holding with the new pin', () => s.holding === 2);
      await h.executeUpdate(stopTunnelUpdate);
    },
    ['completed'],
    true,
    { leases: 0, hosts: ['replay-refused-host'] },
  ),
  tunnel(
    'tunnel-continue-as-new',
    'two leases end, the run continues as new carrying the lease count; the next run holds until stopped',
    // Leases 1 and 2 end at once (tiny leases); the third call (the new run's first) holds so stop has something to stop.
    (call) => (call <= 2 ? 'lease' : 'hold'),
    { leaseMs: 200, leasesPerRun: 2 },
    async (h, s) => {
      await until('the hold in the continued run', () => s.holding === 3);
      await h.executeUpdate(stopTunnelUpdate);
    },
    ['continued-as-new', 'completed'],
  ),
];

// ---------------------------------------------------------------------------------------------------------
// host entity

const hostPhaseOf = async (h: WorkflowHandle) => (await h.query(hostStatusQuery)).phase;

/** A host entity scenario: onboarding child to healthy, then whatever `interact` does, then offboard. */
function hostScenario(name: string, about: string, interact: (handle: WorkflowHandle) => Promise<void>, fakes?: (keyring: Keyring) => Fakes): Scenario {
  const hostId = `replay-${name}`;
  const workflowId = workflowIds.host(hostId);
  return {
    name,
    workflowType: 'hostLifecycle',
    workflowId,
    about,
    prepare(keyring) {
      return {
        activities: onboardingFakes(keyring, fakes?.(keyring)),
        async drive(client, taskQueue) {
          const handle = await client.workflow.start<typeof hostLifecycle>('hostLifecycle', {
            taskQueue,
            workflowId,
            args: [onboardingInput(keyring, hostId, { dataPath: { kind: 'tunnel' } }), { repairBackoffMs: 200, maxRepairBackoffMs: 400, repairVerifyDeadlineMs: 2000 }],
            workflowIdConflictPolicy: 'TERMINATE_EXISTING',
            workflowExecutionTimeout: '5m',
          });
          await until('phase healthy', async () => (await hostPhaseOf(handle)) === 'healthy');
          await interact(handle);
          await handle.executeUpdate(offboardHostUpdate);
          await closed(handle);
          return [{ runId: handle.firstExecutionRunId, closesWith: 'completed' }];
        },
      };
    },
  };
}

const hostScenarios: Scenario[] = [
  hostScenario('host-offboarded', 'onboarding child to healthy, a fresh report, offboard: tunnel released, agent uninstalled, cloudroot removed', async (h) => {
    await h.signal(hostFreshnessSignal, { fresh: true, lastPointAtMs: 1_700_000_020_000, sweptAtMs: 1_700_000_030_000 });
  }),
  hostScenario('host-repaired', 'healthy, then stale points: degraded/NoRecentPoints, repaired (tunnel, agent check, verify) to healthy; offboard', async (h) => {
    await h.signal(hostFreshnessSignal, { fresh: false, lastPointAtMs: 1_700_000_020_000, sweptAtMs: 1_700_000_400_000 });
    await until('repaired', async () => (await h.query(hostStatusQuery)).repairs.some((r) => r.outcome === 'repaired'));
  }),
  hostScenario(
    'host-tunnel-refused',
    'healthy, its keeper reports a refused host key: degraded/HostKeyMismatch, needs-host-key-approval, approved, repaired with the new pin; offboard',
    async (h) => {
      const tunnelId = (await h.query(hostStatusQuery)).onboarding?.tunnelId ?? '';
      await h.signal(tunnelReportSignal, { tunnelId, state: 'refused', atMs: 1_700_000_500_000, error: { type: FailureType.HostKeyMismatch, message: 'changed' }, offered: KEY_B });
      await until('waiting for approval', async () => (await hostPhaseOf(h)) === 'needs-host-key-approval');
      await h.executeUpdate(approveRepairHostKeyUpdate, { args: [{ hostKeySha256: KEY_B }] });
      await until('repaired', async () => (await h.query(hostStatusQuery)).repairs.some((r) => r.outcome === 'repaired'));
    },
    () => {
      let tunnels = 0;
      return {
        ensureTunnel: async () => {
          if (++tunnels === 2) {
            throw ApplicationFailure.create({
              type: FailureType.HostKeyMismatch,
              message: 'host key changed (scripted)',
              nonRetryable: true,
              details: [{ expected: KEY_A, offered: KEY_B, address: '10.213.200.10', port: 22, hop: 'target' }],
            });
          }
          return { connected: true, boundPort: 18086, openConnections: 0, totalConnections: 0, bytesIn: 0, bytesOut: 0, reconnects: 0 };
        },
      };
    },
  ),
  hostScenario('host-changed', 'healthy; a change (labels, interval) applied and verified; a key rotation (add, prove, retire); offboard with the new key', async (h) => {
    const change = await h.executeUpdate(changeHostUpdate, { args: [{ labels: { env: 'replay-2' }, interval: '20s' }] });
    await until('change applied', async () => (await h.query(hostStatusQuery)).changes?.some((c) => c.id === change.changeId && c.outcome) ?? false);
    const rotate = await h.executeUpdate(rotateKeyUpdate);
    await until('key rotated', async () => (await h.query(hostStatusQuery)).changes?.some((c) => c.id === rotate.changeId && c.outcome) ?? false);
    await until('healthy', async () => (await hostPhaseOf(h)) === 'healthy');
  }),
];

/** A failed install: the host entity shows failed, a retry resumes its onboarding from the install; offboard. */
function hostRetriedScenario(): Scenario {
  const name = 'host-retried';
  const hostId = `replay-${name}`;
  const workflowId = workflowIds.host(hostId);
  return {
    name,
    workflowType: 'hostLifecycle',
    workflowId,
    about: 'install fails (AnsibleFailed): failed; retryOnboarding resumes from the install (no probe, no cloudroot), healthy; offboard',
    prepare(keyring) {
      let installs = 0;
      return {
        activities: onboardingFakes(keyring, {
          installAgent: async (i: { outputUrl: string }) => {
            if (++installs === 1) throw ApplicationFailure.create({ type: FailureType.AnsibleFailed, message: 'task "install telegraf" failed (scripted)', nonRetryable: true });
            return { ok: 21, changed: 9, failed: 0, unreachable: 0, telegrafVersion: '1.34.0', agentStartedAtMs: 1_700_000_000_000, outputUrl: i.outputUrl };
          },
        }),
        async drive(client, taskQueue) {
          const input = onboardingInput(keyring, hostId);
          const handle = await client.workflow.start<typeof hostLifecycle>('hostLifecycle', { taskQueue, workflowId, args: [input, {}], workflowIdConflictPolicy: 'TERMINATE_EXISTING', workflowExecutionTimeout: '5m' });
          await until('failed', async () => (await hostPhaseOf(handle)) === 'failed');
          await handle.executeUpdate(retryOnboardingUpdate, { args: [input] });
          await until('healthy', async () => (await hostPhaseOf(handle)) === 'healthy');
          await handle.executeUpdate(offboardHostUpdate);
          await closed(handle);
          return [{ runId: handle.firstExecutionRunId, closesWith: 'completed' }];
        },
      };
    },
  };
}

/**
 * A fleet scenario: the fleet activities are stand-ins that accept everything (the hosts are not run; the drive
 * sends their reports), the fleet starts with the fixture defaults, `interact` drives it, then it is closed.
 */
function fleetScenario(name: string, about: string, start: { members: { hostId: string; address: string }[]; concurrency: number; source?: FleetSource }, interact: (handle: WorkflowHandle<typeof onboardFleet>) => Promise<void>): Scenario {
  const fleetId = `replay-${name}`;
  const workflowId = workflowIds.fleet(fleetId);
  return {
    name,
    workflowType: 'onboardFleet',
    workflowId,
    about,
    prepare(keyring) {
      const ok = async () => ({ refused: [] });
      return {
        activities: { startFleetHosts: ok, retryFleetHosts: ok, releaseFleetHosts: ok, relabelFleetHosts: ok },
        async drive(client, taskQueue) {
          const { hostId: _id, ...shared } = onboardingInput(keyring, 'x');
          const defaults = { ...shared, target: { ...shared.target, address: '' } };
          const handle = await client.workflow.start<typeof onboardFleet>('onboardFleet', {
            taskQueue,
            workflowId,
            args: [{ fleetId, defaults, ...start }, { publishEveryMs: 50 }],
            workflowIdConflictPolicy: 'TERMINATE_EXISTING',
            workflowExecutionTimeout: '5m',
          });
          await interact(handle);
          await handle.executeUpdate(closeFleetUpdate, { args: [{}] });
          await closed(handle);
          return [{ runId: handle.firstExecutionRunId, closesWith: 'completed' }];
        },
      };
    },
  };
}

const fleetStatusOf = (h: WorkflowHandle<typeof onboardFleet>) => h.query(fleetStatusQuery);

const fleetScenarios: Scenario[] = [
  fleetScenario(
    'fleet-retried',
    'three hosts, two at once: started, reports (healthy, failed), the third started; retry of the failed one; healthy; closed',
    { members: [1, 2, 3].map((i) => ({ hostId: `replay-fleet-${i}`, address: `10.213.203.${i}` })), concurrency: 2 },
    async (handle) => {
      const report = (i: number, phase: 'healthy' | 'failed', atMs: number) =>
        handle.signal(fleetMemberSignal, { hostId: `replay-fleet-${i}`, phase, ...(phase === 'failed' ? { error: { type: FailureType.HostUnreachable, message: 'scripted' } } : {}), atMs });
      await until('two started', async () => (await fleetStatusOf(handle)).active === 2);
      const t = Date.now() + 1000;
      await report(1, 'healthy', t);
      await report(2, 'failed', t);
      await until('third started', async () => (await fleetStatusOf(handle)).counts.pending === undefined);
      await report(3, 'healthy', t + 1);
      await until('settled', async () => (await fleetStatusOf(handle)).state === 'settled');
      await handle.executeUpdate(retryFleetUpdate, { args: [{}] });
      await until('retry handed over', async () => (await fleetStatusOf(handle)).retries[0]?.endedAtMs !== undefined);
      await report(2, 'healthy', Date.now() + 2000);
      await until('settled healthy', async () => {
        const st = await fleetStatusOf(handle);
        return st.state === 'settled' && st.counts.healthy === 3;
      });
    },
  ),
  fleetScenario(
    'fleet-reconciled',
    'a source fleet: passes add 2, then −1 +1 (applied), then all gone (held for approval, approved by digest); closed',
    { members: [], concurrency: 4, source: { kind: 'file', path: '/srv/inventory/hosts.yml' } },
    async (handle) => {
      const hostsOf = (ns: number[]) => ns.map((n) => ({ address: `10.213.204.${n}`, hostId: `replay-src-${n}` }));
      const pass = (ns: number[], digest: string) => handle.executeUpdate(fleetInventoryUpdate, { args: [{ read: { hosts: hostsOf(ns), ignored: [], readAtMs: 1_700_000_000_000, digest } }] });
      await pass([1, 2], '1'.repeat(64));
      await until('two members', async () => (await fleetStatusOf(handle)).total === 2);
      await pass([2, 3], '2'.repeat(64));
      await until('churn applied', async () => {
        const st = await fleetStatusOf(handle);
        return st.total === 2 && st.source?.lastApplied?.added === 1;
      });
      await pass([], '3'.repeat(64));
      await until('held', async () => (await fleetStatusOf(handle)).source?.held !== undefined);
      await handle.executeUpdate(approveFleetPlanUpdate, { args: [{ digest: '3'.repeat(64) }] });
      await until('all gone', async () => (await fleetStatusOf(handle)).total === 0);
    },
  ),
];

/** A retried onboarding that goes on from its failed install: the service login and the first run's steps carry over. */
const onboardResumed = onboarding('onboard-resumed', 'a retry resumed after a failed install: no probe or cloudroot, install + verify, healthy', {
  input: (keyring, hostId) => ({
    resume: {
      service: { target: { address: '10.213.200.10', port: 22, hostKeySha256: KEY_A, credential: { username: 'cloudroot', privateKey: sealSecret(keyring, 'replay-private-key') } } },
      previous: {
        hostId,
        address: '10.213.200.10',
        phase: 'failed',
        facts: FACTS,
        hostKeySha256: KEY_A,
        cloudrootUser: 'cloudroot',
        steps: [
          { step: 'probe', startedAtMs: 1_700_000_000_000, endedAtMs: 1_700_000_001_000, attempts: 1, status: 'succeeded' },
          { step: 'cloudroot', startedAtMs: 1_700_000_001_000, endedAtMs: 1_700_000_002_000, attempts: 1, status: 'succeeded' },
          { step: 'install-agent', startedAtMs: 1_700_000_002_000, endedAtMs: 1_700_000_003_000, attempts: 1, status: 'failed', error: { type: FailureType.AnsibleFailed, message: 'scripted' } },
        ],
      },
    },
  }),
});

export const scenarios: readonly Scenario[] = [...onboardingScenarios, onboardResumed, ...tunnelScenarios, ...hostScenarios, hostRetriedScenario(), ...fleetScenarios];

/** The scenario a fixture file belongs to: `<scenario>[.<label>].json` (labels: `run2`, `v1`, ...). */
export function scenarioForFixture(fileName: string): Scenario | undefined {
  const base = fileName.replace(/\.json$/, '').split('.')[0];
  return scenarios.find((s) => s.name === base);
}
