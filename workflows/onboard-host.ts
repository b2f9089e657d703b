import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
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
  getExternalWorkflowHandle,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import {
  FailureType,
  STATUS_MEMO_KEY,
  credentialProblem,
  type AgentInstallSummary,
  type OnboardHostInput,
  type OnboardingPhase,
  type OnboardingStatus,
  type SshCredential,
  type SshHop,
  type SshTarget,
  type StepName,
  type StepRecord,
  type TunnelSpec,
} from './contracts';
import { onboardingProgressSignal, type ServiceAccess } from './host/messages';
import { FINGERPRINT_PATTERN } from './input-rules';
import { approveHostKeyUpdate, onboardingStatusQuery, provideCredentialsUpdate } from './messages';
import { HostAddressKey, HostIdKey, OnboardingPhaseKey } from './search-attributes';

type Activities = ReturnType<typeof createActivities>;

/** Port the forward listens on, on the host (or the proxy) — Telegraf's output URL points at it. */
export const TUNNEL_PORT = 18086;
/** The patch that introduced the status memo (STATUS_MEMO_KEY). */
const STATUS_MEMO_PATCH = 'status-memo';
/** The patch that gave each tunnel a forward-only key (authorizeForwardKey) instead of the sudo key. */
const FORWARD_KEY_PATCH = 'forward-key';
/** The patch after which a failed onboarding detaches its host from the tunnel keeper. */
const RELEASE_TUNNEL_PATCH = 'release-tunnel-on-failure';
/** The patch after which an onboarding started by its host entity reports each phase to it. */
const REPORT_TO_HOST_PATCH = 'report-to-host';
/** Steps a resumed onboarding does not run again (their results are in its resume). */
const RESUMED_STEPS: readonly StepName[] = ['probe', 'cloudroot', 'forward-key'];

/** What an onboarding returns: its status, and (for its host entity) the service login and tunnel it set up. */
export type OnboardingResult = OnboardingStatus & { service?: ServiceAccess };
/** The agent's start time has 1 s precision and Telegraf rounds timestamps to the second. */
export const START_SLACK_MS = 1000;

// Failures an operator must act on are never retried by Temporal; the workflow waits for the operator instead.
const humanFailures = [FailureType.AuthFailed, FailureType.HostKeyMismatch];

/** Probe retries an unreachable host until its budget (an input) is spent, then fails HostUnreachable. */
// startToClose covers the activity's own inner bounds: per hop a 20 s SSH ready timeout, then a 60 s facts command.
const probeActivities = (budgetMs: number) =>
  proxyActivities<Activities>({
    startToCloseTimeout: '3 minutes',
    scheduleToCloseTimeout: budgetMs,
    // Every SSH activity beats every 2 s: a worker that dies mid-step is noticed within 10 s, not at startToClose.
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '20s', nonRetryableErrorTypes: [...humanFailures, FailureType.UnsupportedOS] },
    summary: 'probe: SSH login with the bootstrap credential, pin host key, collect facts',
  });
// Inner bounds: two logins (20 s a hop), a 30 s privilege check, a 120 s setup script, a 30 s sudo proof.
const { createCloudroot, authorizeForwardKey } = proxyActivities<Activities>({
  startToCloseTimeout: '6 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '2s', maximumAttempts: 5, nonRetryableErrorTypes: humanFailures },
  summary: 'cloudroot: key-only service user with validated sudo',
});
const { installAgent } = proxyActivities<Activities>({
  startToCloseTimeout: '20 minutes',
  // A worker that dies mid-step is noticed within 10 s and the step resumes on another (activities beat every 2 s).
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 4, maximumAttempts: 3, nonRetryableErrorTypes: [...humanFailures, FailureType.AnsibleFailed] },
  summary: 'install agent: ansible-playbook, Telegraf role',
});
const { releaseTunnel } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '2s', maximumAttempts: 5 },
  summary: 'tunnel: this host no longer uses the tunnel (the keeper stops with its last host)',
});
const { ensureTunnel } = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '2s', maximumAttempts: 3, nonRetryableErrorTypes: [FailureType.TunnelFailed] },
  summary: 'tunnel: ensure the tunnel keeper and wait until connected',
});
const { verifyMetrics } = proxyActivities<Activities>({
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '10 seconds',
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

/** What the SSH activities put in a failure's details: the hop it is about and the host keys they saw. */
interface SshFailureDetails {
  hop: SshHop;
  offered?: string;
  hostKeySha256?: string;
  viaHostKeySha256?: string;
}

function sshDetails(err: unknown): SshFailureDetails {
  const d = namedCause(err)?.details?.[0] as Record<string, unknown> | undefined;
  const fp = (v: unknown) => (typeof v === 'string' && FINGERPRINT_PATTERN.test(v) ? v : undefined);
  return {
    hop: d?.hop === 'via' ? 'bastion' : 'target',
    offered: fp(d?.offered),
    hostKeySha256: fp(d?.hostKeySha256),
    viaHostKeySha256: fp(d?.viaHostKeySha256),
  };
}

/** `http://ADDR:PORT` with an IPv6 address in brackets. */
function httpUrl(address: string, port: number): string {
  return `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
}

/**
 * `onboard/<hostId>`: from bootstrap credentials to points seen in InfluxDB. Each step is an activity;
 * AuthFailed and HostKeyMismatch park the run until an operator answers through an update, then the
 * same step is tried again in the same run. Failures, approvals and credentials name their hop: the host
 * itself or the bastion of its control path.
 */
export async function onboardHost(input: OnboardHostInput): Promise<OnboardingResult> {
  const timing = input.timing ?? {};
  const status: OnboardingStatus = {
    hostId: input.hostId,
    address: input.target.address,
    phase: 'probing',
    steps: [],
  };
  // A retry of a failed onboarding goes on where it failed: the service login and what the first run saw carry over.
  const resume = input.resume;
  if (resume) {
    const p = resume.previous;
    status.steps = p.steps.filter((s) => s.status === 'succeeded' && RESUMED_STEPS.includes(s.step)).map((s) => ({ ...s }));
    for (const k of ['facts', 'hostKeySha256', 'bastionHostKeySha256', 'cloudrootUser', 'peerAddress'] as const) {
      if (p[k] !== undefined) (status as unknown as Record<string, unknown>)[k] = p[k];
    }
  }
  // The bootstrap target; replaced by the cloudroot target once that exists and then forgotten.
  let target: SshTarget = resume ? resume.service.target : input.target;
  let pendingCredential: { credential: SshCredential; hop: SshHop } | undefined;
  // Known to the host entity (the parent) as soon as they exist, so it can undo them even if this run is cancelled.
  let cloudrootReady = resume !== undefined;
  let serviceTunnel: ServiceAccess['tunnel'] = resume?.service.tunnel;
  const currentService = (): ServiceAccess | undefined =>
    cloudrootReady ? { target, ...(serviceTunnel ? { tunnel: serviceTunnel } : {}) } : undefined;
  const parent = workflowInfo().parent;
  let approved: { hostKeySha256: string; hop: SshHop } | undefined;

  const waitingHop = (arg: { hop?: SshHop } | undefined): SshHop => {
    const hop = arg?.hop ?? status.waitingOn ?? 'target';
    if (hop !== 'target' && hop !== 'bastion') throw new Error('hop must be "target" or "bastion"');
    if (hop !== (status.waitingOn ?? 'target')) throw new Error(`the ${status.waitingOn ?? 'target'} is waiting, not the ${hop}`);
    if (hop === 'bastion' && !target.via) throw new Error('this host has no bastion');
    return hop;
  };

  setHandler(onboardingStatusQuery, () => status);
  setHandler(
    provideCredentialsUpdate,
    (credential: SshCredential, which?: { hop?: SshHop }) => {
      const hop = waitingHop(which);
      pendingCredential = { credential, hop };
      return { accepted: true as const, hop };
    },
    {
      validator: (credential: SshCredential, which?: { hop?: SshHop }) => {
        if (status.phase !== 'needs-credentials') throw new Error(`host is not waiting for credentials (phase ${status.phase})`);
        waitingHop(which);
        // Only sealed secrets: a plaintext one from a client without the codec would land in history in clear.
        const problem = credentialProblem(credential);
        if (problem) throw new Error(problem);
      },
    },
  );
  setHandler(
    approveHostKeyUpdate,
    (arg) => {
      const hop = waitingHop(arg);
      approved = { hostKeySha256: arg.hostKeySha256, hop };
      return { accepted: true as const, hop };
    },
    {
      validator: (arg) => {
        if (status.phase !== 'needs-host-key-approval') throw new Error(`host is not waiting for a host-key approval (phase ${status.phase})`);
        if (!arg || typeof arg.hostKeySha256 !== 'string' || !FINGERPRINT_PATTERN.test(arg.hostKeySha256)) {
          throw new Error('hostKeySha256 must look like SHA256:<43 base64 characters>');
        }
        const hop = waitingHop(arg);
        if (status.offeredHostKeySha256 && arg.hostKeySha256 !== status.offeredHostKeySha256) {
          throw new Error(`approval does not match the key the ${hop} offered (${status.offeredHostKeySha256})`);
        }
      },
    },
  );

  const setPhase = (phase: OnboardingPhase, detail?: string) => {
    status.phase = phase;
    if (phase !== 'needs-credentials' && phase !== 'needs-host-key-approval') status.waitingOn = undefined;
    upsertSearchAttributes([{ key: OnboardingPhaseKey, value: phase }]);
    // The status is also kept in the memo so readers (the API) get it from `describe` alone, without a query
    // that needs a worker to answer (slow exactly when workers are busiest). Histories from before this
    // change replay without it.
    if (patched(STATUS_MEMO_PATCH)) upsertMemo({ [STATUS_MEMO_KEY]: status });
    if (parent && patched(REPORT_TO_HOST_PATCH)) {
      getExternalWorkflowHandle(parent.workflowId, parent.runId)
        .signal(onboardingProgressSignal, { phase, ...(cloudrootReady ? { service: currentService() } : {}) })
        .catch((e) => log.warn('could not report to the host entity', { error: String(e) }));
    }
    setCurrentDetails(`**${phase}**${detail ? ` — ${detail}` : ''}\n\nhost \`${input.hostId}\` at ${input.target.address}:${input.target.port}`);
  };
  upsertSearchAttributes([
    { key: HostIdKey, value: input.hostId },
    { key: HostAddressKey, value: input.target.address },
  ]);

  /** Pins a hop's key; the bastion's key is the jump host's of the control path. */
  const pin = (hop: SshHop, hostKeySha256: string) => {
    if (hop === 'bastion' && target.via) {
      target = { ...target, via: { ...target.via, hostKeySha256 } };
      status.bastionHostKeySha256 = hostKeySha256;
    } else if (hop === 'target') {
      target = { ...target, hostKeySha256 };
      status.hostKeySha256 = hostKeySha256;
    }
  };
  /** Trust on first use happens once: keys seen before a refused login are pinned, not captured again later. */
  const pinSeen = (d: SshFailureDetails) => {
    if (d.hostKeySha256) {
      if (d.hop === 'target' && !target.hostKeySha256) pin('target', d.hostKeySha256);
      if (d.hop === 'bastion' && target.via && !target.via.hostKeySha256) pin('bastion', d.hostKeySha256);
    }
    if (d.viaHostKeySha256 && target.via && !target.via.hostKeySha256) pin('bastion', d.viaHostKeySha256);
  };

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
        const d = sshDetails(err);
        record.error = { type, message: failureMessage(err) };
        status.lastError = record.error;
        // The bootstrap credential is only used by the probe; a bastion login is the operator's at every step.
        if (type === FailureType.AuthFailed && (name === 'probe' || (d.hop === 'bastion' && target.via))) {
          pinSeen(d);
          record.status = 'waiting';
          status.waitingOn = d.hop;
          setPhase('needs-credentials', d.hop === 'bastion' ? 'the bastion refused its login' : 'the bootstrap credential was refused');
          await condition(() => pendingCredential !== undefined);
          const { credential, hop } = pendingCredential!;
          pendingCredential = undefined;
          target = hop === 'bastion' && target.via ? { ...target, via: { ...target.via, credential } } : { ...target, credential };
          continue;
        }
        if (type === FailureType.HostKeyMismatch) {
          record.status = 'waiting';
          status.offeredHostKeySha256 = d.offered;
          status.waitingOn = d.hop;
          setPhase('needs-host-key-approval', `${d.hop === 'bastion' ? 'bastion' : 'host'} key changed: offered ${d.offered ?? 'unknown'}`);
          await condition(() => approved !== undefined);
          pin(approved!.hop, approved!.hostKeySha256);
          status.offeredHostKeySha256 = undefined;
          approved = undefined;
          continue;
        }
        record.status = 'failed';
        record.endedAtMs = Date.now();
        throw err;
      }
    }
  }

  let attachedTunnel: string | undefined;
  try {
    if (!resume) {
      const { probeHost } = probeActivities(timing.probeBudgetMs ?? 5 * 60_000);
      const probe = await step('probe', 'probing', () => probeHost({ target }));
      status.facts = probe.facts;
      if (probe.peerAddress) status.peerAddress = probe.peerAddress;
      pin('target', probe.hostKeySha256);
      if (target.via && probe.viaHostKeySha256) pin('bastion', probe.viaHostKeySha256);

      const cloudroot = await step('cloudroot', 'creating-cloudroot', () => createCloudroot({ hostId: input.hostId, target }));
      status.cloudrootUser = cloudroot.username;
      // From here on only the per-host key is used; the bootstrap credential is dropped from state.
      target = { ...target, credential: { username: cloudroot.username, privateKey: cloudroot.privateKey } };
      cloudrootReady = true;
    }

    // A resumed run whose forward key was made keeps it; otherwise the forward this host needs, if any.
    let tunnel = serviceTunnel ?? tunnelFor(input, target, status.peerAddress);
    if (tunnel && !serviceTunnel && patched(FORWARD_KEY_PATCH)) {
      // The keeper holds its forward for weeks: with a key that may only listen on this one address and port.
      const t = tunnel;
      const onProxy = input.dataPath.kind === 'proxy';
      const login = onProxy ? proxyLogin(input, target) : target;
      const fk = await step('forward-key', 'starting-tunnel', () =>
        authorizeForwardKey({ tunnelId: t.tunnelId, target: login, listen: t.bind, hop: onProxy ? 'via' : 'target' }),
      );
      tunnel = { ...t, ssh: { ...t.ssh, credential: { username: fk.username, privateKey: fk.privateKey } } };
    }
    serviceTunnel = tunnel;
    const outputUrl = tunnel ? httpUrl(tunnel.bind.address, tunnel.bind.port) : (input.dataPath as { influxUrl: string }).influxUrl;
    const agent: AgentInstallSummary = await step('install-agent', 'installing-agent', () =>
      installAgent({ hostId: input.hostId, target, agent: input.agent, outputUrl, labels: input.labels }),
    );
    status.agent = agent;

    if (tunnel) {
      const t = tunnel;
      status.tunnelId = t.tunnelId;
      attachedTunnel = t.tunnelId;
      await step('tunnel', 'starting-tunnel', () =>
        ensureTunnel(t, { connectDeadlineMs: timing.tunnelConnectDeadlineMs ?? 60_000, hostId: input.hostId }),
      );
    }

    status.verified = await step('verify', 'verifying', () =>
      verifyMetrics({ hostId: input.hostId, sinceMs: agent.agentStartedAtMs - START_SLACK_MS, deadlineMs: timing.verifyDeadlineMs ?? 120_000 }),
    );
    setPhase('healthy', `${status.verified.pointsSeen} points seen`);
    log.info('host onboarded', { hostId: input.hostId });
  } catch (err) {
    const type = status.lastError?.type ?? 'Failed';
    status.lastError = { type, message: failureMessage(err) };
    // A host that is not monitored does not hold a tunnel open: the keeper stops with its last host.
    if (attachedTunnel && patched(RELEASE_TUNNEL_PATCH)) {
      const tunnelId = attachedTunnel;
      await CancellationScope.nonCancellable(() => releaseTunnel({ tunnelId, hostId: input.hostId })).catch((e) =>
        log.warn('could not detach the host from its tunnel', { tunnelId, error: String(e) }),
      );
    }
    setPhase('failed', type);
    await condition(allHandlersFinished);
    throw ApplicationFailure.create({ type, message: `onboarding of ${input.hostId} failed: ${failureMessage(err)}`, nonRetryable: true, details: [status] });
  }
  await condition(allHandlersFinished);
  const service = currentService();
  return service ? { ...status, service } : status;
}

/** The proxy's login: the bastion of the control path when the proxy is that bastion (with its current pin and credential). */
export function proxyLogin(input: OnboardHostInput, hostTarget: SshTarget): SshTarget {
  const dp = input.dataPath;
  if (dp.kind !== 'proxy') throw new Error('not a proxy data path');
  const via = hostTarget.via;
  return via && via.address === dp.proxy.address && via.port === dp.proxy.port ? { ...via, via: undefined } : dp.proxy;
}

/**
 * The forward this host's metrics need, if any: on the host itself, or on its network's proxy. A proxy forward
 * binds the given address, or else the proxy's address as the host sees it (`peerAddress` from the probe):
 * never every interface of a host that faces outside.
 */
export function tunnelFor(input: OnboardHostInput, hostTarget: SshTarget, peerAddress?: string): Omit<TunnelSpec, 'target'> | undefined {
  const dp = input.dataPath;
  if (dp.kind === 'tunnel') {
    return { tunnelId: input.hostId, ssh: hostTarget, bind: { address: '127.0.0.1', port: TUNNEL_PORT } };
  }
  if (dp.kind === 'proxy') {
    // The proxy is usually also the bastion of the control path: reuse the key pinned on the way in.
    const via = hostTarget.via;
    const pinned = dp.proxy.hostKeySha256 ?? (via && via.address === dp.proxy.address && via.port === dp.proxy.port ? via.hostKeySha256 : undefined);
    const bindAddress = dp.bindAddress ?? peerAddress;
    if (!bindAddress) {
      throw ApplicationFailure.create({
        type: FailureType.InvalidInput,
        message: `cannot tell the address of proxy ${dp.proxy.address} on the host's network: give proxyBindAddress`,
        nonRetryable: true,
      });
    }
    return {
      tunnelId: proxyTunnelId(dp.proxy.address, dp.proxy.port),
      ssh: { ...dp.proxy, hostKeySha256: pinned },
      bind: { address: bindAddress, port: TUNNEL_PORT },
    };
  }
  return undefined;
}

/**
 * `proxy-<address>` (port 22) or `proxy-<address>-p<port>`: one keeper per proxy server. IPv6 colons become
 * underscores; the API keeps host ids out of the `proxy-` namespace so the two never collide.
 */
export function proxyTunnelId(address: string, port: number): string {
  const readable = address.toLowerCase().replace(/[^a-z0-9.-]/g, '_');
  return port === 22 ? `proxy-${readable}` : `proxy-${readable}-p${port}`;
}
