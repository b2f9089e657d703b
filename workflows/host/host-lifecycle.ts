import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  ParentClosePolicy,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  patched,
  proxyActivities,
  setHandler,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  allHandlersFinished,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import { FailureType, STATUS_MEMO_KEY, credentialProblem, workflowIds, type OnboardingResume, type SshCredential, type AgentHealth, type AgentOptions, type OnboardHostInput, type SshHop, type SshTarget } from '../contracts';
import { AGENT_VERSION_PATTERN, FINGERPRINT_PATTERN, INTERVAL_PATTERN, labelsProblem } from '../input-rules';
import { START_SLACK_MS, onboardHost, proxyLogin } from '../onboard-host';
import { HostAddressKey, HostFreshnessKey, HostIdKey, OnboardingPhaseKey } from '../search-attributes';
import {
  approveRepairHostKeyUpdate,
  changeHostUpdate,
  hostFreshnessSignal,
  hostStatusQuery,
  offboardHostUpdate,
  onboardingProgressSignal,
  provideRepairCredentialsUpdate,
  retryOnboardingUpdate,
  rotateKeyUpdate,
  tunnelReportSignal,
  type ChangeRecord,
  type FreshnessReport,
  type HostChange,
  type HostStatus,
  type ServiceAccess,
} from './messages';
import { HostState, type DegradedReason, type HostPhase } from './state';
import { fleetMemberSignal, fleetSubscribeSignal, fleetUnsubscribeSignal, type MemberReport } from '../fleet/messages';

type Activities = ReturnType<typeof createActivities>;

/** Tunable in tests; the defaults are what an operator gets. */
export interface HostLifecycleOptions {
  /** First wait between repair attempts; doubles up to maxRepairBackoffMs. */
  repairBackoffMs?: number;
  maxRepairBackoffMs?: number;
  /** How long a repair's verification waits for fresh points. */
  repairVerifyDeadlineMs?: number;
  /** A tunnel reported down for this long (and not back up) degrades the host: TunnelDown. */
  tunnelDownGraceMs?: number;
  /** How long a change's verification waits for points with the new config before rolling back. */
  changeVerifyDeadlineMs?: number;
  /** Continue-as-new once a run's history has this many events (or when the server suggests it). */
  historyEventsPerRun?: number;
}

export const LIFECYCLE_DEFAULTS = {
  repairBackoffMs: 30_000,
  maxRepairBackoffMs: 15 * 60_000,
  repairVerifyDeadlineMs: 120_000,
  tunnelDownGraceMs: 30_000,
  changeVerifyDeadlineMs: 120_000,
  historyEventsPerRun: 10_000,
} as const;

/**
 * Patch: the watch loop also hears its tunnel keeper, checks the agent over SSH before re-running the role,
 * records the freshness it verified, takes changes and key rotations, and continues-as-new. Runs recorded before
 * it replay the ladder they ran (tunnel → role → verify).
 */
export const HOST_WATCH_V2_PATCH = 'host-watch-v2';

/** What a run hands the next one (continue-as-new): the host as it is now; the onboarding is not run again. */
export interface HostCarry {
  status: HostStatus;
  service?: ServiceAccess;
  freshness?: FreshnessReport;
  changeSeq: number;
}

/** Changes kept in the status (the oldest fall off). */
const MAX_CHANGES = 20;

const humanFailures = [FailureType.AuthFailed, FailureType.HostKeyMismatch];

// Every long activity heartbeats; a worker that dies is noticed within 10 s and the step resumes elsewhere.
const repair = proxyActivities<Activities>({
  startToCloseTimeout: '20 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '5s', maximumAttempts: 2, nonRetryableErrorTypes: [...humanFailures, FailureType.AnsibleFailed, FailureType.TunnelFailed, FailureType.NoPoints, FailureType.StalePoints] },
  summary: 'repair: tunnel, agent, verification',
});
// A change re-runs the role and verifies (then maybe rolls back); a rotation adds, proves and retires keys.
const change = proxyActivities<Activities>({
  startToCloseTimeout: '20 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '2s', maximumAttempts: 2, nonRetryableErrorTypes: [...humanFailures, FailureType.AnsibleFailed, FailureType.NoPoints, FailureType.StalePoints, FailureType.InvalidInput, FailureType.CloudrootFailed] },
  summary: 'change: agent config or cloudroot key',
});
const offboard = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 4, nonRetryableErrorTypes: [...humanFailures, FailureType.InvalidInput] },
  summary: 'offboard: undo one step',
});

function errorOf(err: unknown): { type: string; message: string; details?: Record<string, unknown> } {
  for (let e: unknown = err; e instanceof Error; e = (e as { cause?: unknown }).cause) {
    if (e instanceof ApplicationFailure && e.type) {
      const d = e.details?.[0];
      return { type: e.type, message: e.message, ...(d && typeof d === 'object' ? { details: d as Record<string, unknown> } : {}) };
    }
  }
  return { type: 'Failed', message: err instanceof Error ? err.message : String(err) };
}

/** Why a change cannot be applied as asked, or null (the same rules as the API; the workflow is the last gate). */
export function changeProblem(c: unknown, currentMode: AgentOptions['mode']): string | null {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return 'a change object is required';
  const ch = c as Record<string, unknown>;
  const allowed = ['labels', 'interval', 'agentMode', 'agentVersion'];
  const unknown = Object.keys(ch).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) return `unknown field(s): ${unknown.join(', ')}`;
  if (!allowed.some((k) => ch[k] !== undefined)) return 'nothing to change: give labels, interval, agentMode or agentVersion';
  if (ch.labels !== undefined) {
    if (typeof ch.labels !== 'object' || ch.labels === null || Array.isArray(ch.labels)) return 'labels must be an object of strings';
    const p = labelsProblem(ch.labels as Record<string, unknown>);
    if (p) return `labels ${p}`;
  }
  if (ch.interval !== undefined && (typeof ch.interval !== 'string' || !INTERVAL_PATTERN.test(ch.interval))) return `interval must match ${INTERVAL_PATTERN}`;
  if (ch.agentMode !== undefined && ch.agentMode !== 'artifact' && ch.agentMode !== 'repo') return 'agentMode must be "artifact" or "repo"';
  if (ch.agentVersion !== undefined) {
    if (typeof ch.agentVersion !== 'string' || (ch.agentVersion !== '' && !AGENT_VERSION_PATTERN.test(ch.agentVersion))) return `agentVersion must match ${AGENT_VERSION_PATTERN} (or "" to unpin)`;
    const mode = (ch.agentMode as AgentOptions['mode'] | undefined) ?? currentMode;
    if (ch.agentVersion !== '' && mode !== 'repo') return 'agentVersion needs agentMode "repo" (the artifact is the controller\'s own binary)';
  }
  return null;
}

/** The agent options and labels after a change. */
export function applyChange(agent: AgentOptions, labels: Record<string, string> | undefined, c: HostChange): { agent: AgentOptions; labels?: Record<string, string> } {
  const next: AgentOptions = { ...agent, ...(c.agentMode ? { mode: c.agentMode } : {}), ...(c.interval ? { interval: c.interval } : {}) };
  if (c.agentVersion !== undefined) next.version = c.agentVersion;
  if (!next.version || next.mode !== 'repo') delete next.version;
  const nextLabels = c.labels !== undefined ? { ...c.labels } : labels;
  return { agent: next, ...(nextLabels ? { labels: nextLabels } : {}) };
}

/** The same login with `hostKeySha256` pinned on the hop at address:port (the target or its bastion). */
export function repin(t: SshTarget, address: string, port: number, hostKeySha256: string): SshTarget {
  const via = t.via ? repin(t.via, address, port, hostKeySha256) : undefined;
  return { ...t, ...(t.address === address && t.port === port ? { hostKeySha256 } : {}), ...(via ? { via } : {}) };
}

/**
 * `host/<hostId>`: one entity per host from the first POST to offboarded. Its first stage is the onboarding
 * (`onboard/<hostId>`, a child that reports each phase); then it watches: the fleet-wide freshness sweep and the
 * tunnel tell it what changed (no timer per host), and a host that stops delivering is degraded, repaired along a
 * ladder with backoff, and back to healthy when its points are seen again. `offboard` undoes everything.
 * Every phase change goes through HostState (state.ts).
 */
export async function hostLifecycle(input: OnboardHostInput, options: HostLifecycleOptions = {}, carry?: HostCarry): Promise<HostStatus> {
  const opts = { ...LIFECYCLE_DEFAULTS, ...options };
  const now = () => Date.now();
  const status: HostStatus = carry
    ? { ...carry.status }
    : { hostId: input.hostId, address: input.target.address, phase: 'onboarding', since: now(), repairs: [], repairsLastHour: 0, flapping: false };
  let agent: AgentOptions = carry?.status.agentConfig ?? input.agent;
  let labels: Record<string, string> | undefined = carry ? carry.status.labels : input.labels;
  const state = carry ? HostState.restore(carry.status) : new HostState('onboarding', now());
  // The fleets this host belongs to hear each phase change (and where it is when they join).
  const fleets = new Set<string>(carry?.status.fleets ?? []);
  let reported: string | undefined;
  const reportTo = (ids: Iterable<string>) => {
    const error = state.phase === 'failed' ? status.onboarding?.lastError : undefined;
    const r: MemberReport = { hostId: input.hostId, phase: state.phase, ...(state.reason ? { reason: state.reason } : {}), ...(error ? { error: { type: error.type, message: error.message } } : {}), atMs: now() };
    for (const fleetId of ids) {
      getExternalWorkflowHandle(workflowIds.fleet(fleetId))
        .signal(fleetMemberSignal, r)
        .catch((e) => log.warn('could not report to the fleet', { fleetId, error: String(e) }));
    }
  };
  const publish = () => {
    delete status.reason; // a reason the state no longer has must not linger in the memo
    Object.assign(status, state.view(now()));
    status.agentConfig = agent;
    if (labels) status.labels = labels;
    else delete status.labels;
    upsertSearchAttributes([{ key: OnboardingPhaseKey, value: state.phase }]);
    upsertMemo({ [STATUS_MEMO_KEY]: status });
    const key = `${state.phase}/${state.reason ?? ''}`;
    if (fleets.size > 0 && key !== reported) {
      reported = key;
      reportTo(fleets);
    }
  };
  const moveTo = (phase: HostPhase, reason?: DegradedReason) => {
    if (state.phase === phase && state.reason === reason) return;
    state.moveTo(phase, now(), reason);
    publish();
  };

  let service: ServiceAccess | undefined = carry?.service;
  let freshness: FreshnessReport | undefined = carry?.freshness;
  let freshnessSeen = 0; // bumps on every signal, so waits wake on news
  let tunnelSeen = 0; // bumps on every tunnel report that changed something
  let offboardRequested = false;
  let approved: { hostKeySha256: string; hop: SshHop } | undefined;
  let credentialGiven: { credential: SshCredential; hop: SshHop } | undefined;
  let changeSeq = carry?.changeSeq ?? 0;
  const queue: ChangeRecord[] = [];
  let v2 = false; // HOST_WATCH_V2_PATCH, decided when the watch starts
  // The input the next onboarding runs with (a retry may correct it); the continued run gets it too.
  let current: OnboardHostInput = input;
  let retryWith: OnboardHostInput | undefined;

  upsertSearchAttributes([
    { key: HostIdKey, value: input.hostId },
    { key: HostAddressKey, value: input.target.address },
  ]);
  publish();

  setHandler(hostStatusQuery, () => status);
  setHandler(fleetSubscribeSignal, ({ fleetId }) => {
    if (typeof fleetId !== 'string' || fleetId === '') return;
    if (!fleets.has(fleetId)) {
      fleets.add(fleetId);
      status.fleets = [...fleets];
      upsertMemo({ [STATUS_MEMO_KEY]: status });
    }
    reportTo([fleetId]);
  });
  setHandler(fleetUnsubscribeSignal, ({ fleetId }) => {
    if (!fleets.delete(fleetId)) return;
    status.fleets = [...fleets];
    upsertMemo({ [STATUS_MEMO_KEY]: status });
  });
  setHandler(
    retryOnboardingUpdate,
    (next) => {
      retryWith = next;
      return { accepted: true as const, resumed: resumeFor(next) !== undefined };
    },
    {
      validator: (next) => {
        if (offboardRequested || state.phase !== 'failed' || retryWith) throw new Error(`host ${input.hostId} has no failed onboarding to retry (phase ${state.phase})`);
        if (!next || typeof next !== 'object' || next.hostId !== input.hostId) throw new Error('the retry must be for this host');
        const problem = credentialProblem(next.target?.credential);
        if (problem) throw new Error(`target.credential: ${problem}`);
        if (next.target.via) {
          const p = credentialProblem(next.target.via.credential);
          if (p) throw new Error(`target.via.credential: ${p}`);
        }
      },
    },
  );
  setHandler(onboardingProgressSignal, (p) => {
    if (p.service) service = p.service;
    // The child's phases are the host's while it onboards (state never lies: the host is where its onboarding is).
    if (!offboardRequested && state.can(p.phase) && state.phase !== 'failed') moveTo(p.phase);
  });
  setHandler(hostFreshnessSignal, (report) => {
    freshness = report;
    freshnessSeen++;
    status.lastPointAtMs = report.lastPointAtMs;
    upsertSearchAttributes([{ key: HostFreshnessKey, value: report.fresh ? 'fresh' : 'stale' }]);
    publish(); // signals come only on a change: one memo update per change
  });
  setHandler(tunnelReportSignal, (r) => {
    const ours = service?.tunnel?.tunnelId ?? status.onboarding?.tunnelId;
    if (ours && r.tunnelId !== ours) return; // a keeper this host no longer uses
    const prev = status.tunnel;
    if (prev && prev.tunnelId === r.tunnelId && prev.state === r.state && prev.error?.type === r.error?.type) return;
    status.tunnel = { tunnelId: r.tunnelId, state: r.state, since: now(), ...(r.error ? { error: r.error } : {}) };
    tunnelSeen++;
    publish();
  });
  setHandler(
    offboardHostUpdate,
    () => {
      offboardRequested = true;
      return { accepted: true as const };
    },
    {
      validator: () => {
        if (state.phase === 'offboarding' || state.phase === 'offboarded' || offboardRequested) throw new Error(`host ${input.hostId} is already ${state.phase === 'offboarded' ? 'offboarded' : 'offboarding'}`);
      },
    },
  );
  setHandler(
    approveRepairHostKeyUpdate,
    ({ hostKeySha256, hop }) => {
      approved = { hostKeySha256, hop: hop ?? status.waitingOn ?? 'target' };
      return { accepted: true as const };
    },
    {
      validator: (arg) => {
        if (state.phase !== 'needs-host-key-approval') throw new Error(`host is not waiting for a host-key approval (phase ${state.phase})`);
        if (!arg || typeof arg.hostKeySha256 !== 'string' || !FINGERPRINT_PATTERN.test(arg.hostKeySha256)) {
          throw new Error('hostKeySha256 must look like SHA256:<43 base64 characters>');
        }
        const waiting = status.waitingOn ?? 'target';
        if (arg.hop !== undefined && arg.hop !== waiting) throw new Error(`the ${waiting} is waiting, not the ${String(arg.hop)}`);
        if (status.offeredHostKeySha256 && arg.hostKeySha256 !== status.offeredHostKeySha256) {
          throw new Error(`approval does not match the key the ${waiting} offered (${status.offeredHostKeySha256})`);
        }
      },
    },
  );
  setHandler(
    provideRepairCredentialsUpdate,
    (credential: SshCredential, which?: { hop?: SshHop }) => {
      const hop = which?.hop ?? status.waitingOn ?? 'target';
      credentialGiven = { credential, hop };
      return { accepted: true as const, hop };
    },
    {
      validator: (credential: SshCredential, which?: { hop?: SshHop }) => {
        if (state.phase !== 'needs-credentials') throw new Error(`host is not waiting for credentials (phase ${state.phase})`);
        const waiting = status.waitingOn ?? 'target';
        if (which?.hop !== undefined && which.hop !== waiting) throw new Error(`the ${waiting} is waiting, not the ${String(which.hop)}`);
        const problem = credentialProblem(credential);
        if (problem) throw new Error(problem);
      },
    },
  );
  const changeable = () => {
    if (offboardRequested) throw new Error(`host ${input.hostId} is offboarding`);
    if (state.phase !== 'healthy' && state.phase !== 'degraded') throw new Error(`host ${input.hostId} can change when healthy or degraded, not ${state.phase}`);
    if (queue.length > 0) throw new Error(`host ${input.hostId} has a change in flight (${queue[0].id})`);
    if (!service) throw new Error(`host ${input.hostId} has no service login to change it with`);
  };
  const enqueue = (record: Omit<ChangeRecord, 'id' | 'requestedAtMs'>) => {
    const id = `${record.kind === 'rotate-key' ? 'rotate' : 'change'}-${++changeSeq}`;
    queue.push({ id, requestedAtMs: now(), ...record });
    return { accepted: true as const, changeId: id };
  };
  setHandler(changeHostUpdate, (c) => enqueue({ kind: 'change', change: c }), {
    validator: (c) => {
      changeable();
      const problem = changeProblem(c, agent.mode);
      if (problem) throw new Error(problem);
    },
  });
  setHandler(rotateKeyUpdate, () => enqueue({ kind: 'rotate-key' }), { validator: changeable });

  // ---- stage 1: onboarding, as a child that reports its phases (a continued run is past it) ----
  let onboarded = carry ? state.phase !== 'failed' : await runOnboarding(current);
  // A failed onboarding stays visible as failed until it is retried (a fleet's retry) or offboarded.
  while (!onboarded && !offboardRequested) {
    await condition(() => offboardRequested || retryWith !== undefined);
    if (offboardRequested || !retryWith) break;
    const next: OnboardHostInput = retryWith;
    retryWith = undefined;
    const resume = resumeFor(next);
    current = next;
    status.onboardingRetries = (status.onboardingRetries ?? 0) + 1;
    moveTo('onboarding');
    onboarded = await runOnboarding(resume ? { ...next, resume } : next);
  }

  // ---- stage 2: watching, repairing, changing ----
  if (onboarded) {
    if (!carry) moveTo('healthy');
    if ((await watch()) === 'continue') {
      await condition(allHandlersFinished);
      // The bootstrap secret is not needed any more: the next run holds only the service login.
      const nextInput: OnboardHostInput = service ? { ...current, target: { ...current.target, credential: service.target.credential } } : current;
      return continueAsNew<typeof hostLifecycle>(nextInput, options, { status, ...(service ? { service } : {}), ...(freshness ? { freshness } : {}), changeSeq });
    }
  }

  // ---- stage 3: offboarding saga ----
  moveTo('offboarding');
  status.notCleaned = await undoEverything();
  moveTo('offboarded');
  await condition(allHandlersFinished);
  return status;

  /** The watch loop: acts on news only (a sweep's report, a tunnel report, a change); returns to offboard or continue. */
  async function watch(): Promise<'offboard' | 'continue'> {
    v2 = patched(HOST_WATCH_V2_PATCH);
    let backoffMs = opts.repairBackoffMs;
    while (!offboardRequested) {
      if (v2 && queue.length === 0 && (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= opts.historyEventsPerRun)) return 'continue';
      const seenF = freshnessSeen;
      const seenT = tunnelSeen;
      const news = () => offboardRequested || queue.length > 0 || freshnessSeen !== seenF || tunnelSeen !== seenT;
      const graceLeft = tunnelGraceLeft();
      if (graceLeft === undefined) await condition(news);
      else await condition(news, graceLeft);
      if (offboardRequested) break;
      if (queue.length > 0) {
        await runChange(queue[0]);
        queue.shift();
        continue;
      }
      let reason = problem();
      if (!reason) {
        if (state.phase === 'degraded') moveTo('healthy');
        backoffMs = opts.repairBackoffMs;
        continue;
      }
      // Degraded with a name, then the ladder, then backoff (news that may have fixed it cuts the wait short).
      if (state.phase === 'healthy') moveTo('degraded', reason);
      for (;;) {
        const repaired = await repairOnce(reason);
        if (repaired || offboardRequested) break;
        const waitFor = backoffMs;
        backoffMs = Math.min(backoffMs * 2, opts.maxRepairBackoffMs);
        const bf = freshnessSeen;
        const bt = tunnelSeen;
        await condition(
          () => offboardRequested || queue.length > 0 || (freshnessSeen !== bf && !!freshness?.fresh) || (tunnelSeen !== bt && status.tunnel?.state === 'connected'),
          waitFor,
        );
        if (offboardRequested || queue.length > 0) break;
        const next = problem();
        if (!next) {
          if (state.phase === 'degraded') moveTo('healthy');
          break;
        }
        reason = v2 ? next : (state.reason ?? next);
      }
    }
    return 'offboard';
  }

  /** What is wrong now, from the last news: the tunnel refused or down past its grace, or no recent points. */
  function problem(): DegradedReason | undefined {
    const t = status.tunnel;
    if (service?.tunnel && t && t.tunnelId === service.tunnel.tunnelId) {
      if (t.state === 'refused') return t.error?.type === FailureType.HostKeyMismatch ? 'HostKeyMismatch' : 'TunnelDown';
      if (t.state === 'down' && now() - t.since >= opts.tunnelDownGraceMs) return 'TunnelDown';
    }
    if (freshness && !freshness.fresh) return 'NoRecentPoints';
    return undefined;
  }

  /** While a tunnel report says down and its grace has not run out: how long is left (a blip is not an outage). */
  function tunnelGraceLeft(): number | undefined {
    const t = status.tunnel;
    if (!service?.tunnel || t?.state !== 'down' || t.tunnelId !== service.tunnel.tunnelId) return undefined;
    const left = t.since + opts.tunnelDownGraceMs - now();
    return left > 0 ? left : undefined;
  }

  /** Points were just seen: the host knows it is fresh without waiting for the next sweep. */
  function sawPoints(lastPointAtMs: number | null) {
    freshness = { fresh: true, lastPointAtMs, sweptAtMs: now() };
    status.lastPointAtMs = lastPointAtMs;
    if (v2) upsertSearchAttributes([{ key: HostFreshnessKey, value: 'fresh' }]);
  }

  /**
   * A retry goes on from the failed step when the service login exists and the host is where it was (same address,
   * port and bastion); the bootstrap login is not needed for that. Otherwise it starts again at the probe.
   */
  function resumeFor(next: OnboardHostInput): OnboardingResume | undefined {
    const before = current.target;
    const same = next.target.address === before.address && next.target.port === before.port && JSON.stringify(next.target.via?.address ?? null) === JSON.stringify(before.via?.address ?? null) && next.target.via?.port === before.via?.port;
    if (!service || !status.onboarding || !same) return undefined;
    return { service, previous: status.onboarding };
  }

  /** Runs `onboard/<hostId>`; true when it ended healthy. An offboard request cancels it (its steps are undone after). */
  async function runOnboarding(onboardInput: OnboardHostInput): Promise<boolean> {
    const scope = new CancellationScope();
    const running = scope.run(async () => {
      const child = await startChild(onboardHost, {
        workflowId: workflowIds.onboarding(input.hostId),
        args: [onboardInput],
        parentClosePolicy: ParentClosePolicy.TERMINATE,
        staticSummary: `Onboarding of ${input.hostId} (stage 1 of host/${input.hostId})`,
      });
      return child.result();
    });
    const settled = running.then(
      (result) => ({ result }),
      (error: unknown) => ({ error }),
    );
    const first = await Promise.race([settled, condition(() => offboardRequested).then(() => 'offboard' as const)]);
    if (first === 'offboard') {
      // Cancel the onboarding and let it stop before its steps are undone.
      scope.cancel();
      await settled;
      return false;
    }
    if ('result' in first) {
      status.onboarding = stripService(first.result);
      if (first.result.service) service = first.result.service;
      return true;
    }
    const err = first.error;
    const details = (err instanceof ChildWorkflowFailure && err.cause instanceof ApplicationFailure ? err.cause.details?.[0] : undefined) as HostStatus['onboarding'];
    if (details) status.onboarding = details;
    log.warn('onboarding failed', { hostId: input.hostId, error: errorOf(err).message });
    if (!offboardRequested && state.can('failed')) moveTo('failed');
    return false;
  }

  /**
   * One pass of the repair ladder, each rung idempotent and recorded; true when fresh points are seen again.
   * Tunnel (re-authorize its key if refused, restart it if down) → check the agent over SSH and start it →
   * verify → still nothing: re-run the role → verify. A changed host key waits for an approval; an
   * unreachable host stays degraded/HostUnreachable and is tried again after the backoff.
   */
  async function repairOnce(reason: DegradedReason, before: readonly string[] = []): Promise<boolean> {
    if (!service) return false;
    moveTo('repairing', reason);
    const startedAt = now();
    const svc = service;
    // What this repair did before a person answered (approved a key, gave a login) is part of its record.
    const done: string[] = [...before];
    type Rung = 'ok' | 'failed' | 'host-key' | 'refused' | 'unreachable';
    let hostKeyFailure: ReturnType<typeof errorOf> | undefined;
    let refusedLogin: ReturnType<typeof errorOf> | undefined;
    let failedAs: DegradedReason = reason;
    /** `forward` rungs: an AuthFailed there is the forward key's (re-authorized next pass), not a login for a person. */
    const rung = async (action: string, run: () => Promise<unknown>, forward = false): Promise<Rung> => {
      try {
        await run();
        done.push(action);
        return 'ok';
      } catch (err) {
        const e = errorOf(err);
        state.recordRepair({ atMs: now(), reason, action, outcome: 'failed', error: `${e.type}: ${e.message}` });
        if (v2) publish();
        if (e.type === FailureType.HostKeyMismatch) {
          hostKeyFailure = e;
          return 'host-key';
        }
        if (e.type === FailureType.HostUnreachable) return 'unreachable';
        if (v2 && e.type === FailureType.AuthFailed && forward) {
          status.tunnel = { tunnelId: svc.tunnel?.tunnelId ?? '', state: 'refused', since: now(), error: { type: e.type, message: e.message } };
          return 'failed';
        }
        if (v2 && e.type === FailureType.AuthFailed) {
          refusedLogin = e;
          return 'refused';
        }
        return 'failed';
      }
    };
    let verified: { lastPointAtMs: number | null } | undefined;
    const verify = () =>
      rung('verify fresh points', async () => {
        verified = await repair.verifyMetrics({ hostId: input.hostId, sinceMs: startedAt, deadlineMs: opts.repairVerifyDeadlineMs });
      });
    const outputUrl = status.onboarding?.agent?.outputUrl ?? '';
    const role = () => rung('re-run the agent role', () => repair.installAgent({ hostId: input.hostId, target: svc.target, agent, outputUrl, labels }));

    let outcome: Rung = 'ok';
    if (svc.tunnel) {
      let t = svc.tunnel;
      if (v2 && status.tunnel?.state === 'refused' && status.tunnel.error?.type === FailureType.AuthFailed) {
        // The forward's key was refused (removed from the host?): issue a new one, as onboarding does.
        outcome = await rung('re-authorize the forward key', async () => {
          const onProxy = input.dataPath.kind === 'proxy';
          const login = onProxy ? proxyLogin(input, svc.target) : svc.target;
          const fk = await repair.authorizeForwardKey({ tunnelId: t.tunnelId, target: login, listen: t.bind, hop: onProxy ? 'via' : 'target' });
          t = { ...t, ssh: { ...t.ssh, credential: { username: fk.username, privateKey: fk.privateKey } } };
          service = { ...svc, tunnel: t };
        });
      }
      if (outcome === 'ok') {
        const tunnel = t;
        outcome = await rung(
          reason === 'TunnelDown' ? 'restart the tunnel' : 'ensure the tunnel',
          () => repair.ensureTunnel(tunnel, { connectDeadlineMs: 60_000, hostId: input.hostId, ...(v2 && reason === 'TunnelDown' ? { restart: true } : {}) }),
          true,
        );
        if (outcome === 'ok') status.tunnel = { tunnelId: tunnel.tunnelId, state: 'connected', since: now() };
      }
      if (v2 && outcome === 'failed') failedAs = 'TunnelDown';
    }
    if (!v2) {
      // The ladder as runs before HOST_WATCH_V2_PATCH ran it: the role (converges config and unit, starts Telegraf), then verify.
      if (outcome === 'ok' || outcome === 'failed') outcome = await role();
      if (outcome === 'ok') outcome = await verify();
    } else if (outcome === 'ok') {
      let health: AgentHealth | undefined;
      if (reason !== 'TunnelDown') {
        outcome = await rung('check the agent', async () => {
          const seen = await repair.checkAgent({ hostId: input.hostId, target: svc.target, restart: true });
          health = seen;
          status.agentHealth = seen;
        });
        if (health?.restarted) done[done.length - 1] = 'check the agent: started Telegraf';
      }
      const agentUp = outcome === 'ok' && (health === undefined || health.running);
      if (agentUp) outcome = await verify();
      if (outcome === 'failed' || (outcome === 'ok' && !agentUp)) {
        if (!agentUp) failedAs = 'AgentDown';
        outcome = await role();
        if (outcome === 'ok') outcome = await verify();
      }
    }
    if (outcome === 'ok') {
      state.recordRepair({ atMs: now(), reason, action: v2 ? done.join(', ') : svc.tunnel ? 'tunnel + agent role' : 'agent role', outcome: 'repaired' });
      sawPoints(verified?.lastPointAtMs ?? null);
      moveTo('healthy');
      return true;
    }
    if (outcome === 'host-key') {
      const d = hostKeyFailure?.details ?? {};
      const hop: SshHop = d.hop === 'via' || d.hop === 'bastion' ? 'bastion' : 'target';
      const offered = typeof d.offered === 'string' && FINGERPRINT_PATTERN.test(d.offered) ? d.offered : undefined;
      const at = hop === 'bastion' ? svc.target.via ?? svc.target : svc.target;
      const address = typeof d.address === 'string' ? d.address : at.address;
      const port = typeof d.port === 'number' ? d.port : at.port;
      status.waitingOn = hop;
      if (offered) status.offeredHostKeySha256 = offered;
      if (v2) state.recordRepair({ atMs: now(), reason, action: `wait for a host-key approval (the ${hop} offers ${offered ?? 'an unknown key'})`, outcome: 'waiting' });
      moveTo('needs-host-key-approval');
      await condition(() => approved !== undefined || offboardRequested);
      status.waitingOn = undefined;
      status.offeredHostKeySha256 = undefined;
      if (!approved) return false;
      const key = approved.hostKeySha256;
      approved = undefined;
      // The new pin on every login that goes through that server: the service login, its bastion, the tunnel's.
      const tunnel = svc.tunnel ? { ...svc.tunnel, ssh: repin(svc.tunnel.ssh, address, port, key) } : undefined;
      service = { target: repin(svc.target, address, port, key), ...(tunnel ? { tunnel } : {}) };
      if (status.onboarding) {
        if (svc.target.address === address && svc.target.port === port) status.onboarding.hostKeySha256 = key;
        if (svc.target.via && svc.target.via.address === address && svc.target.via.port === port) status.onboarding.bastionHostKeySha256 = key;
      }
      return repairOnce('HostKeyMismatch', v2 ? [`pin the ${hop}'s new key`] : []);
    }
    if (outcome === 'refused') {
      // A login was refused: cloudroot's key (someone removed it) or the bastion's login. A person gives one.
      const d = refusedLogin?.details ?? {};
      const hop: SshHop = d.hop === 'via' || d.hop === 'bastion' ? 'bastion' : 'target';
      status.waitingOn = hop;
      state.recordRepair({ atMs: now(), reason, action: `wait for the ${hop}'s login (${refusedLogin?.message ?? 'refused'})`, outcome: 'waiting' });
      moveTo('needs-credentials');
      await condition(() => credentialGiven !== undefined || offboardRequested);
      status.waitingOn = undefined;
      if (!credentialGiven) return false;
      const { credential, hop: answered } = credentialGiven;
      credentialGiven = undefined;
      if (answered === 'bastion' && svc.target.via) {
        service = { ...svc, target: { ...svc.target, via: { ...svc.target.via, credential } } };
        return repairOnce(reason, ["use the bastion's new login"]);
      } else {
        // The bootstrap login recreates cloudroot with a new key (exactly that key, plus the forward-only ones).
        moveTo('repairing', reason);
        const again = await rung('recreate cloudroot', async () => {
          const made = await repair.createCloudroot({ hostId: input.hostId, target: { ...svc.target, credential } });
          service = { ...svc, target: { ...svc.target, credential: { username: made.username, privateKey: made.privateKey } } };
        });
        if (again !== 'ok') {
          moveTo('degraded', again === 'unreachable' ? 'HostUnreachable' : reason);
          return false;
        }
      }
      return repairOnce(reason, ['recreate cloudroot']);
    }
    moveTo('degraded', outcome === 'unreachable' ? 'HostUnreachable' : failedAs);
    return false;
  }

  /** A change or a key rotation, from healthy or degraded; the record says what came of it. */
  async function runChange(record: ChangeRecord): Promise<void> {
    status.changes = [...(status.changes ?? []), record].slice(-MAX_CHANGES);
    moveTo('changing');
    let healthyAfter = true;
    try {
      if (record.kind === 'rotate-key') {
        await rotateKey(record);
      } else {
        healthyAfter = await changeAgent(record, record.change ?? {});
      }
    } catch (err) {
      const e = errorOf(err);
      record.outcome = 'failed';
      record.error = `${e.type}: ${e.message}`;
    }
    record.endedAtMs = now();
    if (healthyAfter) moveTo('healthy');
    else moveTo('degraded', 'AgentDown');
  }

  /** Re-runs the role with the change and verifies points with it; back to the previous config when they do not come. */
  async function changeAgent(record: ChangeRecord, c: HostChange): Promise<boolean> {
    const svc = service!;
    const outputUrl = status.onboarding?.agent?.outputUrl ?? '';
    const previous = { agent, labels };
    const next = applyChange(agent, labels, c);
    const applyAndVerify = async (cfg: { agent: AgentOptions; labels?: Record<string, string> }) => {
      const summary = await change.installAgent({ hostId: input.hostId, target: svc.target, agent: cfg.agent, outputUrl, labels: cfg.labels });
      const tags = cfg.labels && Object.keys(cfg.labels).length > 0 ? { tags: cfg.labels } : {};
      const seen = await change.verifyMetrics({ hostId: input.hostId, sinceMs: summary.agentStartedAtMs - START_SLACK_MS, deadlineMs: opts.changeVerifyDeadlineMs, ...tags });
      if (status.onboarding) status.onboarding.agent = summary;
      sawPoints(seen.lastPointAtMs);
    };
    try {
      await applyAndVerify(next);
      agent = next.agent;
      labels = next.labels;
      record.outcome = 'applied';
      return true;
    } catch (err) {
      const e = errorOf(err);
      record.error = `${e.type}: ${e.message}`;
    }
    try {
      await applyAndVerify(previous);
      record.outcome = 'rolled-back';
      return true;
    } catch (err) {
      const e = errorOf(err);
      record.outcome = 'failed';
      record.error += `; rollback: ${e.type}: ${e.message}`;
      return false;
    }
  }

  /** A new cloudroot key, proven, in use; then every other login key of cloudroot goes. */
  async function rotateKey(record: ChangeRecord): Promise<void> {
    const svc = service!;
    const added = await change.addCloudrootKey({ hostId: input.hostId, target: svc.target });
    const target: SshTarget = { ...svc.target, credential: { username: added.username, privateKey: added.privateKey } };
    // The new key logs in (addCloudrootKey proved it): from here on it is the host's service login.
    service = { ...svc, target };
    const retired = await change.retireCloudrootKeys({ hostId: input.hostId, target, keepPublicKeySha256: added.publicKeySha256 });
    record.outcome = 'applied';
    record.error = undefined;
    log.info('cloudroot key rotated', { hostId: input.hostId, removed: retired.removed, publicKeySha256: added.publicKeySha256 });
  }

  /** The saga's compensations, each idempotent; what could not be cleaned is listed, never hidden. */
  async function undoEverything(): Promise<string[]> {
    const notCleaned: string[] = [];
    const step = async (what: string, run: () => Promise<unknown>) => {
      try {
        await CancellationScope.nonCancellable(run);
      } catch (err) {
        const e = errorOf(err);
        notCleaned.push(`${what}: ${e.type}: ${e.message}`);
      }
    };
    const svc = service;
    const tunnelId = svc?.tunnel?.tunnelId ?? status.onboarding?.tunnelId;
    let tunnelStopped = false;
    if (tunnelId) {
      await step('tunnel', async () => {
        tunnelStopped = (await offboard.releaseTunnel({ tunnelId, hostId: input.hostId })).stopping;
      });
    }
    if (!svc) {
      if (status.onboarding?.cloudrootUser) notCleaned.push('cloudroot: the service user exists but its key is unknown here');
      return notCleaned;
    }
    await step('agent', () => offboard.uninstallAgent({ hostId: input.hostId, target: svc.target, agent }));
    // A proxy's forward key goes with its keeper: other hosts behind the same proxy may still use both.
    if (svc.tunnel && input.dataPath.kind === 'proxy' && tunnelStopped) {
      const proxy = proxyLogin(input, svc.target);
      const t = svc.tunnel;
      await step('forward key on the proxy', () => offboard.revokeForwardKey({ tunnelId: t.tunnelId, target: proxy, hop: 'via' }));
    }
    await step('cloudroot', () => offboard.removeCloudroot({ hostId: input.hostId, target: svc.target }));
    return notCleaned;
  }
}

function stripService<T extends { service?: unknown }>(r: T): Omit<T, 'service'> {
  const { service: _service, ...rest } = r;
  return rest;
}


