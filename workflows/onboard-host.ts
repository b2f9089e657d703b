import {
  ActivityFailure,
  ApplicationFailure,
  TimeoutFailure,
  condition,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  allHandlersFinished,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import {
  FailureType,
  STATUS_MEMO_KEY,
  type AgentInstallSummary,
  type OnboardHostInput,
  type OnboardingPhase,
  type OnboardingStatus,
  type SshCredential,
  type SshTarget,
  type StepName,
  type StepRecord,
  type TunnelSpec,
} from './contracts';
import { approveHostKeyUpdate, onboardingStatusQuery, provideCredentialsUpdate } from './messages';
import { HostAddressKey, HostIdKey, OnboardingPhaseKey } from './search-attributes';

type Activities = ReturnType<typeof createActivities>;

/** Port the forward listens on, on the host (or the proxy) — Telegraf's output URL points at it. */
export const TUNNEL_PORT = 18086;
/** The patch that introduced the status memo (STATUS_MEMO_KEY). */
const STATUS_MEMO_PATCH = 'status-memo';
/** The agent's start time has 1 s precision and Telegraf rounds timestamps to the second. */
const START_SLACK_MS = 1000;
const FP_RE = /^SHA256:[A-Za-z0-9+/]{43}$/;

// Failures an operator must act on are never retried by Temporal; the workflow waits for the operator instead.
const humanFailures = [FailureType.AuthFailed, FailureType.HostKeyMismatch];

/** Probe retries an unreachable host until its budget (an input) is spent, then fails HostUnreachable. */
const probeActivities = (budgetMs: number) =>
  proxyActivities<Activities>({
    startToCloseTimeout: '1 minute',
    scheduleToCloseTimeout: budgetMs,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '20s', nonRetryableErrorTypes: [...humanFailures, FailureType.UnsupportedOS] },
    summary: 'probe: SSH login with the bootstrap credential, pin host key, collect facts',
  });
const { createCloudroot } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '2s', maximumAttempts: 5, nonRetryableErrorTypes: humanFailures },
  summary: 'cloudroot: key-only service user with validated sudo',
});
const { installAgent } = proxyActivities<Activities>({
  startToCloseTimeout: '20 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '5s', maximumAttempts: 3, nonRetryableErrorTypes: [...humanFailures, FailureType.AnsibleFailed] },
  summary: 'install agent: ansible-playbook, Telegraf role',
});
const { ensureTunnel } = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '2s', maximumAttempts: 3, nonRetryableErrorTypes: [FailureType.TunnelFailed] },
  summary: 'tunnel: ensure the tunnel keeper and wait until connected',
});
const { verifyMetrics } = proxyActivities<Activities>({
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '2s', maximumAttempts: 3, nonRetryableErrorTypes: [FailureType.NoPoints, FailureType.StalePoints, FailureType.InfluxUnreachable] },
  summary: 'verify: points tagged with this host id arrive in InfluxDB',
});

/** The innermost named ApplicationFailure in a failure chain (timeouts carry the last attempt's failure). */
function namedCause(err: unknown): ApplicationFailure | undefined {
  for (let e: unknown = err; e instanceof Error; e = (e as { cause?: unknown }).cause) {
    if (e instanceof ApplicationFailure && e.type) return e;
  }
  return undefined;
}

function failureType(err: unknown, step: StepName): string {
  const named = namedCause(err);
  if (named?.type) return named.type;
  if (err instanceof ActivityFailure && err.cause instanceof TimeoutFailure) {
    return step === 'probe' ? FailureType.HostUnreachable : `${step}-timeout`;
  }
  return 'Failed';
}

function failureMessage(err: unknown): string {
  const named = namedCause(err);
  if (named) return named.message;
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

function offeredKey(err: unknown): string | undefined {
  const d = namedCause(err)?.details?.[0] as { offered?: string } | undefined;
  return d && typeof d.offered === 'string' ? d.offered : undefined;
}

/**
 * `onboard/<hostId>`: from bootstrap credentials to points seen in InfluxDB. Each step is an activity;
 * AuthFailed and HostKeyMismatch park the run until an operator answers through an update, then the
 * same step is tried again in the same run.
 */
export async function onboardHost(input: OnboardHostInput): Promise<OnboardingStatus> {
  const timing = input.timing ?? {};
  const status: OnboardingStatus = {
    hostId: input.hostId,
    address: input.target.address,
    phase: 'probing',
    steps: [],
  };
  // The bootstrap target; replaced by the cloudroot target once that exists and then forgotten.
  let target: SshTarget = input.target;
  let pendingCredential: SshCredential | undefined;
  let approvedKey: string | undefined;

  setHandler(onboardingStatusQuery, () => status);
  setHandler(
    provideCredentialsUpdate,
    (credential) => {
      pendingCredential = credential;
      return { accepted: true };
    },
    {
      validator: (credential) => {
        if (status.phase !== 'needs-credentials') throw new Error(`host is not waiting for credentials (phase ${status.phase})`);
        const n = Number(!!credential?.password) + Number(!!credential?.privateKey);
        if (!credential?.username || n !== 1) throw new Error('exactly one of password or privateKey is required, with a username');
      },
    },
  );
  setHandler(
    approveHostKeyUpdate,
    ({ hostKeySha256 }) => {
      approvedKey = hostKeySha256;
      return { accepted: true };
    },
    {
      validator: (arg) => {
        if (status.phase !== 'needs-host-key-approval') throw new Error(`host is not waiting for a host-key approval (phase ${status.phase})`);
        if (!arg || !FP_RE.test(arg.hostKeySha256)) throw new Error('hostKeySha256 must look like SHA256:<43 base64 characters>');
        if (status.offeredHostKeySha256 && arg.hostKeySha256 !== status.offeredHostKeySha256) {
          throw new Error(`approval does not match the key the host offered (${status.offeredHostKeySha256})`);
        }
      },
    },
  );

  const setPhase = (phase: OnboardingPhase, detail?: string) => {
    status.phase = phase;
    upsertSearchAttributes([{ key: OnboardingPhaseKey, value: phase }]);
    // The status is also kept in the memo so readers (the API) get it from `describe` alone, without a query
    // that needs a worker to answer (slow exactly when workers are busiest). Histories from before this
    // change replay without it.
    if (patched(STATUS_MEMO_PATCH)) upsertMemo({ [STATUS_MEMO_KEY]: status });
    setCurrentDetails(`**${phase}**${detail ? ` — ${detail}` : ''}\n\nhost \`${input.hostId}\` at ${input.target.address}:${input.target.port}`);
  };
  upsertSearchAttributes([
    { key: HostIdKey, value: input.hostId },
    { key: HostAddressKey, value: input.target.address },
  ]);

  /** Runs one step, recording it in the timeline; parks for a human on AuthFailed / HostKeyMismatch. */
  async function step<T>(name: StepName, phase: OnboardingPhase, run: () => Promise<T>): Promise<T> {
    const record: StepRecord = { step: name, startedAtMs: Date.now(), attempts: 0, status: 'running' };
    status.steps.push(record);
    for (;;) {
      setPhase(phase, name);
      record.status = 'running';
      record.attempts++;
      try {
        const result = await run();
        record.status = 'succeeded';
        record.endedAtMs = Date.now();
        record.error = undefined;
        return result;
      } catch (err) {
        const type = failureType(err, name);
        record.error = { type, message: failureMessage(err) };
        status.lastError = record.error;
        if (type === FailureType.AuthFailed && name === 'probe') {
          record.status = 'waiting';
          setPhase('needs-credentials', 'the bootstrap credential was refused');
          await condition(() => pendingCredential !== undefined);
          target = { ...target, credential: pendingCredential! };
          pendingCredential = undefined;
          continue;
        }
        if (type === FailureType.HostKeyMismatch) {
          record.status = 'waiting';
          status.offeredHostKeySha256 = offeredKey(err);
          setPhase('needs-host-key-approval', `host key changed: offered ${status.offeredHostKeySha256 ?? 'unknown'}`);
          await condition(() => approvedKey !== undefined);
          target = { ...target, hostKeySha256: approvedKey };
          status.hostKeySha256 = approvedKey;
          status.offeredHostKeySha256 = undefined;
          approvedKey = undefined;
          continue;
        }
        record.status = 'failed';
        record.endedAtMs = Date.now();
        throw err;
      }
    }
  }

  try {
    const { probeHost } = probeActivities(timing.probeBudgetMs ?? 5 * 60_000);
    const probe = await step('probe', 'probing', () => probeHost({ target }));
    status.facts = probe.facts;
    status.hostKeySha256 = probe.hostKeySha256;
    target = {
      ...target,
      hostKeySha256: probe.hostKeySha256,
      via: target.via ? { ...target.via, hostKeySha256: probe.viaHostKeySha256 ?? target.via.hostKeySha256 } : undefined,
    };

    const cloudroot = await step('cloudroot', 'creating-cloudroot', () => createCloudroot({ hostId: input.hostId, target }));
    status.cloudrootUser = cloudroot.username;
    // From here on only the per-host key is used; the bootstrap credential is dropped from state.
    target = { ...target, credential: { username: cloudroot.username, privateKey: cloudroot.privateKey } };

    const tunnel = tunnelFor(input, target);
    const outputUrl = tunnel ? `http://${tunnel.bind.address}:${tunnel.bind.port}` : (input.dataPath as { influxUrl: string }).influxUrl;
    const agent: AgentInstallSummary = await step('install-agent', 'installing-agent', () =>
      installAgent({ hostId: input.hostId, target, agent: input.agent, outputUrl, labels: input.labels }),
    );
    status.agent = agent;

    if (tunnel) {
      status.tunnelId = tunnel.tunnelId;
      await step('tunnel', 'starting-tunnel', () => ensureTunnel(tunnel, { connectDeadlineMs: timing.tunnelConnectDeadlineMs ?? 60_000 }));
    }

    status.verified = await step('verify', 'verifying', () =>
      verifyMetrics({ hostId: input.hostId, sinceMs: agent.agentStartedAtMs - START_SLACK_MS, deadlineMs: timing.verifyDeadlineMs ?? 120_000 }),
    );
    setPhase('healthy', `${status.verified.pointsSeen} points seen`);
    log.info('host onboarded', { hostId: input.hostId });
  } catch (err) {
    const type = status.lastError?.type ?? 'Failed';
    status.lastError = { type, message: failureMessage(err) };
    setPhase('failed', type);
    await condition(allHandlersFinished);
    throw ApplicationFailure.create({ type, message: `onboarding of ${input.hostId} failed: ${failureMessage(err)}`, nonRetryable: true, details: [status] });
  }
  await condition(allHandlersFinished);
  return status;
}

/** The forward this host's metrics need, if any: on the host itself, or on its network's proxy. */
export function tunnelFor(input: OnboardHostInput, hostTarget: SshTarget): Omit<TunnelSpec, 'target'> | undefined {
  const dp = input.dataPath;
  if (dp.kind === 'tunnel') {
    return { tunnelId: input.hostId, ssh: hostTarget, bind: { address: '127.0.0.1', port: TUNNEL_PORT } };
  }
  if (dp.kind === 'proxy') {
    // The proxy is usually also the bastion of the control path: reuse the key pinned on the way in.
    const via = hostTarget.via;
    const pinned = dp.proxy.hostKeySha256 ?? (via && via.address === dp.proxy.address && via.port === dp.proxy.port ? via.hostKeySha256 : undefined);
    return {
      tunnelId: `proxy-${dp.proxy.address.replace(/[^A-Za-z0-9.-]/g, '_')}`,
      ssh: { ...dp.proxy, hostKeySha256: pinned },
      bind: { address: dp.bindAddress, port: TUNNEL_PORT },
    };
  }
  return undefined;
}
