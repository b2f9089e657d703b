/**
 * Worker crash recovery per onboarding step. For each step (probe, cloudroot, install-agent, tunnel, verify) a host
 * is onboarded the way the API does it (`host/<id>` with its child `onboard/<id>`) on the real worker, run as a
 * child process in its own process group. Once the step's activity is running (a started pending activity of its
 * type in the onboarding's describe; for install-agent, once ansible-playbook runs), the worker's whole process
 * group gets SIGKILL and a fresh worker is started at once. Measured from the kill: the fresh worker polling, the
 * step's activity started again (a new attempt, from the server's pending-activity info), its first heartbeat of
 * that attempt, and the host entity reaching `healthy`. The tunnel keeper's hold is measured the same way on a
 * host that is already healthy: kill → new hold attempt → keeper connected → `GET /ping` through the forward
 * from inside the host answers again.
 *
 * The baseline, in the same run: the same onboarding without a kill (time per step, total), so each crash can be
 * read as time added to an onboarding. Probe and cloudroot have no heartbeat timeout: a dead worker is noticed
 * only when their start-to-close timeout (3 and 6 minutes) expires. Both are killed by one crash, and the
 * heartbeating cases run while they wait (never close to their expected retry, never while they finish), which
 * keeps the whole run at about 7 minutes on 2 cores. To catch a step that lasts a few hundred milliseconds, their
 * hosts run with a CPU quota (THROTTLE_PCT % of one core) until the kill; the quota is lifted right after it.
 *
 *   npm run bench:recovery                                               # RUNS=2 (~7 min)
 *   RUNS=1 STEPS=install-agent,tunnel,verify,hold npm run bench:recovery   # heartbeating steps only (~3 min)
 *   STEPS=forward-key npm run bench:recovery                              # also available; 6 min like cloudroot
 * RUNS (default 2): runs of the baseline and of each heartbeating case; SLOW_RUNS (default 1): of probe/cloudroot.
 */
import { spawnSync } from 'node:child_process';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { observeDescription, tunnelStatus, tunnelStatusFrom } from '../activities/tunnel/describe';
import { bundleWorkflows } from '../apps/worker/bundle';
import { createFleet, type Fleet, type FleetHost } from '../test/fleet';
import { writeBundleFiles, type BundleFiles } from '../test/support/worker-process';
import { STATUS_MEMO_KEY, workflowIds, type OnboardingStatus, type StepName } from '../workflows/contracts';
import { TUNNEL_PORT } from '../workflows/onboard-host';
import { HostAddressKey, HostIdKey, OnboardingPhaseKey } from '../workflows/search-attributes';
import { pingUntilUp } from './lib/host-probes';
import { asHandHost, releaseHostCpu, throttleHostCpu } from './lib/hosts';
import { onboardInput, stepDurations, stopKeepers } from './lib/ours';
import { runBench, startStack, startWorkerProcess, type BenchStack, type Cleanup, type WorkerProcess } from './lib/stack';
import { envInt, fmtMs, printJsonResult, sleep, table, until } from './lib/stats';

type KillStep = StepName;
type CaseStep = KillStep | 'hold';

/**
 * The activity of each step and the timeouts that bound its recovery, as declared in workflows/onboard-host.ts and
 * workflows/tunnel-keeper.ts: a dead worker is noticed after heartbeatMs without a heartbeat (or, without one,
 * after startToCloseMs), and the retry starts after the retry policy's initial interval.
 */
const STEP: Record<CaseStep, { activity: string; heartbeatMs?: number; startToCloseMs?: number; retryMs: number }> = {
  probe: { activity: 'probeHost', startToCloseMs: 3 * 60_000, retryMs: 1_000 },
  cloudroot: { activity: 'createCloudroot', startToCloseMs: 6 * 60_000, retryMs: 2_000 },
  'forward-key': { activity: 'authorizeForwardKey', startToCloseMs: 6 * 60_000, retryMs: 2_000 },
  'install-agent': { activity: 'installAgent', heartbeatMs: 10_000, retryMs: 1_000 },
  tunnel: { activity: 'ensureTunnel', heartbeatMs: 10_000, retryMs: 2_000 },
  verify: { activity: 'verifyMetrics', heartbeatMs: 10_000, retryMs: 2_000 },
  hold: { activity: 'holdReverseForward', heartbeatMs: 10_000, retryMs: 200 },
};
const ONBOARD_STEPS: KillStep[] = ['probe', 'cloudroot', 'forward-key', 'install-agent', 'tunnel', 'verify'];
const DEFAULT_STEPS: CaseStep[] = ['probe', 'cloudroot', 'install-agent', 'tunnel', 'verify', 'hold'];
const isSlow = (s: CaseStep) => !STEP[s].heartbeatMs;
/** A case that did not hit its step (it ended just before the kill) is tried again on a new host, this often. */
const MAX_TRIES = 3;
/** No heartbeating case may still run this close to a waiting slow case's expected retry. */
const GATE_MARGIN_MS = 20_000;
const POLL_MS = 100;
const STARTED = temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED;

interface Pending {
  attempt: number;
  started: boolean;
  startedAtMs?: number;
  heartbeatAtMs?: number;
  worker?: string;
}

interface KillResult {
  step: CaseStep;
  run: number;
  hostId: string;
  /** Tries needed to hit the step (a try whose step had ended before the kill does not count). */
  tries: number;
  killedAttempt: number;
  killedWorker: string;
  freshWorker: string;
  /** How old the server's last sign of life (attempt start or heartbeat) of the killed attempt was at the kill. */
  lastBeatAgeMs: number;
  /** When the timeouts say the retry is due: last sign of life + heartbeat (or start-to-close) timeout + retry interval. */
  dueMs: number;
  workerReadyMs: number;
  resumedMs?: number;
  resumedBy?: string;
  /** describe: seen while running; history: the retry ended between two polls (its started event). */
  resumedSource?: 'describe' | 'history';
  firstHeartbeatMs?: number;
  /** hold: the keeper reports connected again. */
  connectedMs?: number;
  /** Host entity healthy (hold: `GET /ping` through the forward answers 204 again). */
  healthyMs: number;
  /** The killed step's duration with the crash in it (onboarding timeline). */
  stepMs?: number;
  /** Onboarding start → host healthy, with the crash. */
  totalMs?: number;
  /** Attempts of the step's activity (history). */
  attempts?: number;
  /** Telegraf processes on the host afterwards (one expected). */
  telegrafs?: number;
}

interface BaselineResult {
  run: number;
  hostId: string;
  steps: Partial<Record<StepName, number>>;
  totalMs: number;
}

runBench('recovery', async (cleanup) => {
  const runs = envInt('RUNS', 2);
  const slowRuns = envInt('SLOW_RUNS', 1);
  const throttlePct = envInt('THROTTLE_PCT', 10);
  const steps = parseSteps(process.env.STEPS);
  const t0 = Date.now();
  const stack = await startStack(cleanup, 'recovery');
  const bundle = writeBundleFiles(await bundleWorkflows());
  cleanup.add('workflow bundle', () => bundle.remove());
  const workers = new Workers(cleanup, stack, bundle);
  await workers.start();
  const fleet = await createFleet();
  cleanup.add('fleet', () => fleet.destroy());
  cleanup.add('workflows', async () => {
    await stopKeepers(stack.client, stack.config.temporal.onboardingTaskQueue);
    await stopKeepers(stack.client, stack.config.temporal.tunnelTaskQueue);
  });
  const ctx: Ctx = { stack, fleet, workers, throttlePct, hostSeq: 0 };
  const baseline: BaselineResult[] = [];
  const kills: KillResult[] = [];
  const missed: { step: CaseStep; run: number }[] = [];
  const failed: { step: CaseStep | 'baseline'; run: number; error: string }[] = [];
  console.log(`recovery: steps ${steps.join(', ')}; ${runs} run(s) each and of the baseline (probe, cloudroot, forward-key: ${slowRuns})`);

  // ---- the slow steps: one crash interrupts all of them; their recoveries are awaited in the background ----
  const waits: SlowWait[] = [];
  const slowSteps = steps.filter(isSlow) as KillStep[];
  const slowDone: Promise<void>[] = [];
  for (let r = 1; r <= slowRuns && slowSteps.length; r++) {
    let todo = [...slowSteps];
    for (let tryNo = 1; todo.length && tryNo <= MAX_TRIES; tryNo++) {
      await gate(waits, 90_000);
      const round = await killRound(ctx, todo, r, tryNo);
      for (const c of round.missed) console.log(`  ${c}: ended before the kill; again on a new host`);
      todo = round.missed;
      for (const f of round.followers) {
        waits.push(f.wait);
        slowDone.push(
          f.result.then(
            (k) => {
              kills.push(k);
              printKill(k);
            },
            (e: Error) => {
              console.error(`  ${f.wait.step} run ${r} failed: ${e.message}`);
              failed.push({ step: f.wait.step, run: r, error: e.message });
            },
          ),
        );
      }
    }
    for (const s of todo) missed.push({ step: s, run: r });
  }

  // ---- baseline and heartbeating cases, between the slow ones' waits ----
  // How long a case may take, for the gate: a guess until one has run, then the longest seen.
  const guesses: Record<string, number> = { baseline: 60_000, hold: 45_000, kill: 90_000 };
  const longest = new Map<string, number>();
  const timed = async <T>(kind: string, fn: () => Promise<T>): Promise<T> => {
    await gate(waits, (longest.get(kind) ?? guesses[kind]) * 1.2);
    const started = Date.now();
    const out = await fn();
    longest.set(kind, Math.max(longest.get(kind) ?? 0, Date.now() - started));
    return out;
  };
  const fast = steps.filter((s) => !isSlow(s) && s !== 'hold') as KillStep[];
  const attempt = async <T>(step: CaseStep | 'baseline', run: number, fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (e) {
      console.error(`  ${step} run ${run} failed: ${(e as Error).message}`);
      failed.push({ step, run, error: (e as Error).message });
      return undefined;
    }
  };
  for (let r = 1; r <= runs; r++) {
    const b = await attempt('baseline', r, () => timed('baseline', () => baselineRun(ctx, r)));
    if (b) {
      baseline.push(b.result);
      console.log(`  baseline ${r}/${runs}: ${fmtMs(b.result.totalMs)} (${ONBOARD_STEPS.map((s) => `${s} ${fmtMs(b.result.steps[s] ?? NaN)}`).join(', ')})`);
      if (steps.includes('hold')) {
        const k = await attempt('hold', r, () => timed('hold', () => holdKill(ctx, b.host, b.result.hostId, r)));
        if (k) {
          kills.push(k);
          printKill(k);
        }
      }
      await b.dispose();
    }
    for (const s of fast) {
      let done = false;
      for (let tryNo = 1; !done && tryNo <= MAX_TRIES; tryNo++) {
        const k = await attempt(s, r, () =>
          timed('kill', async () => {
            const round = await killRound(ctx, [s], r, tryNo);
            return round.followers.length ? round.followers[0].result : null;
          }),
        );
        if (k === undefined) break; // failed: recorded
        if (k) {
          kills.push(k);
          printKill(k);
          done = true;
        } else console.log(`  ${s}: ended before the kill; again on a new host`);
      }
      if (!done && !failed.some((f) => f.step === s && f.run === r)) missed.push({ step: s, run: r });
    }
  }
  if (waits.some((w) => !w.finished)) console.log('  waiting for the slow steps to recover ...');
  await Promise.all(slowDone);

  // ---- report ----
  const baseStep = (s: StepName) => mid(baseline.map((b) => b.steps[s]).filter((x): x is number => Number.isFinite(x)));
  const baseTotal = mid(baseline.map((b) => b.totalMs));
  console.log(`\nbaseline: the same onboarding without a kill, ${baseline.length} run(s), median`);
  console.log(table([...ONBOARD_STEPS, 'total'], [[...ONBOARD_STEPS.map((s) => fmtMs(baseStep(s))), fmtMs(baseTotal)]]));
  // Up to three runs: every value; more: median (min–max).
  const rng = (xs: (number | undefined)[]) => {
    const v = xs.filter((x): x is number => Number.isFinite(x));
    if (!v.length) return '-';
    if (v.length <= 3) return v.map(fmtMs).join(' / ');
    return `${fmtMs(mid(v))} (${fmtMs(Math.min(...v))}–${fmtMs(Math.max(...v))})`;
  };
  const rows = steps.map((s) => {
    const ks = kills.filter((k) => k.step === s);
    const isHold = s === 'hold';
    return [
      isHold ? 'hold (keeper)' : s,
      ks.length,
      isHold ? '-' : fmtMs(baseStep(s)),
      isHold ? '-' : rng(ks.map((k) => k.stepMs)),
      rng(ks.map((k) => k.lastBeatAgeMs)),
      rng(ks.map((k) => k.dueMs)),
      rng(ks.map((k) => k.workerReadyMs)),
      rng(ks.map((k) => k.resumedMs)),
      rng(ks.map((k) => (isHold ? k.connectedMs : k.firstHeartbeatMs))),
      rng(ks.map((k) => k.healthyMs)),
      isHold ? '-' : rng(ks.map((k) => (k.totalMs ?? NaN) - baseTotal)),
    ];
  });
  console.log(`\nworker SIGKILL during a step, a fresh worker started at once; times from the kill (per run, or median (min–max)); "+ vs baseline": onboarding total minus the baseline's median`);
  console.log(table([
    'step killed', 'runs', 'baseline step', 'step with kill', 'last beat age', 'due (timeouts)', 'fresh worker polling',
    'resumed', 'heartbeat again (hold: connected)', 'healthy (hold: forward up)', 'onboarding + vs baseline',
  ], rows));
  if (failed.length) console.log(`failed: ${failed.map((f) => `${f.step} run ${f.run}: ${f.error}`).join('; ')}`);
  if (missed.length) console.log(`not hit after ${MAX_TRIES} tries (the step ended before each kill): ${missed.map((m) => `${m.step} run ${m.run}`).join(', ')}`);
  console.log(`(${((Date.now() - t0) / 60_000).toFixed(1)} min in all)`);
  printJsonResult('recovery', { runs, slowRuns, throttlePct, steps, heartbeatTimeoutMs: 10_000, baseline, kills, missed, failed, wallMs: Date.now() - t0 });
});

// ---------------------------------------------------------------------------------------------------------------

interface Ctx {
  stack: BenchStack;
  fleet: Fleet;
  workers: Workers;
  throttlePct: number;
  hostSeq: number;
}

/** The current worker process; `kill()` is the crash, `start()` the fresh one (identity recovery-w<N>). */
class Workers {
  private gen = 0;
  current!: WorkerProcess;
  constructor(private readonly cleanup: Cleanup, private readonly stack: BenchStack, private readonly bundle: BundleFiles) {}
  async start(): Promise<number> {
    this.gen++;
    this.current = await startWorkerProcess(this.cleanup, this.stack, `worker-${this.gen}`, { identity: `recovery-w${this.gen}`, bundle: this.bundle, ownGroup: true });
    return Date.now();
  }
  /** SIGKILL to the worker's process group; resolves with the time just before the signal. */
  async kill(): Promise<{ atMs: number; identity: string }> {
    const victim = this.current;
    const atMs = Date.now();
    await victim.killGroup();
    return { atMs, identity: victim.identity };
  }
}

interface Onboarding {
  hostId: string;
  host: FleetHost;
  startedAtMs: number;
  undoThrottle?: () => void;
  dispose(): Promise<void>;
}

async function startOnboarding(ctx: Ctx, label: string, run: number, throttle: boolean): Promise<Onboarding> {
  const { stack, fleet } = ctx;
  const host = await fleet.addHost({ name: `h${++ctx.hostSeq}`, topology: 'direct' });
  const undoThrottle = throttle ? throttleHostCpu(host, ctx.throttlePct) : undefined;
  const hostId = `rec-${label}-${run}-${ctx.hostSeq}`;
  const input = onboardInput(stack.keyring, asHandHost(host, hostId));
  const startedAtMs = Date.now();
  // As the API starts it (apps/api/hosts/hosts.service.ts): the host entity, whose first stage is the onboarding.
  await stack.client.workflow.start('hostLifecycle', {
    args: [input],
    workflowId: workflowIds.host(hostId),
    taskQueue: stack.config.temporal.onboardingTaskQueue,
    workflowIdConflictPolicy: 'USE_EXISTING',
    typedSearchAttributes: [
      { key: HostIdKey, value: hostId },
      { key: HostAddressKey, value: input.target.address },
      { key: OnboardingPhaseKey, value: 'onboarding' },
    ],
  });
  return {
    hostId,
    host,
    startedAtMs,
    undoThrottle,
    dispose: async () => {
      await stack.client.workflow.getHandle(workflowIds.host(hostId)).terminate('bench case over').catch(() => undefined);
      await stack.client.workflow.getHandle(workflowIds.tunnel(hostId)).terminate('bench case over').catch(() => undefined);
      await fleet.destroyHost(host);
      undoThrottle?.();
    },
  };
}

/** The pending activity of `type` on a workflow; undefined when there is none (or no such workflow yet). */
async function pending(client: Client, workflowId: string, type: string): Promise<Pending | undefined> {
  let desc;
  try {
    desc = await client.workflow.getHandle(workflowId).describe();
  } catch (e) {
    if (e instanceof WorkflowNotFoundError) return undefined;
    throw e;
  }
  const p = (desc.raw.pendingActivities ?? []).find((a) => a.activityType?.name === type);
  if (!p) return undefined;
  return {
    attempt: p.attempt ?? 1,
    started: p.state === STARTED,
    startedAtMs: optionalTsToMs(p.lastStartedTime),
    heartbeatAtMs: optionalTsToMs(p.lastHeartbeatTime),
    worker: p.lastWorkerIdentity ?? undefined,
  };
}

async function hostPhase(client: Client, hostId: string): Promise<string | undefined> {
  const desc = await client.workflow.getHandle(workflowIds.host(hostId)).describe();
  const phase = desc.typedSearchAttributes.get(OnboardingPhaseKey);
  if (desc.status.name !== 'RUNNING' && phase !== 'healthy') return `closed (${desc.status.name})`;
  return phase;
}

/** Waits until the host entity is healthy; throws on failed or a closed entity. */
async function untilHealthy(client: Client, hostId: string, budgetMs: number, onPoll?: () => Promise<void>, everyMs: () => number = () => POLL_MS): Promise<number> {
  const deadline = Date.now() + budgetMs;
  for (;;) {
    await onPoll?.();
    const phase = await hostPhase(client, hostId);
    if (phase === 'healthy') return Date.now();
    if (phase === 'failed' || phase?.startsWith('closed') || phase?.startsWith('needs-')) throw new Error(`host ${hostId} ended ${phase}`);
    if (Date.now() > deadline) throw new Error(`host ${hostId} not healthy within ${budgetMs} ms (phase ${phase})`);
    await sleep(everyMs());
  }
}

/** The onboarding's result (its step timeline) and its history's view of one activity. */
async function onboardingFacts(client: Client, hostId: string, activity: string) {
  const handle = client.workflow.getHandle(workflowIds.onboarding(hostId));
  const status = (await handle.result()) as OnboardingStatus;
  const events = (await handle.fetchHistory()).events ?? [];
  const scheduled = new Set(
    events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === activity).map((e) => String(e.eventId)),
  );
  const started = events
    .filter((e) => e.activityTaskStartedEventAttributes && scheduled.has(String(e.activityTaskStartedEventAttributes.scheduledEventId)))
    .map((e) => ({ attempt: e.activityTaskStartedEventAttributes!.attempt ?? 1, atMs: optionalTsToMs(e.eventTime), identity: e.activityTaskStartedEventAttributes!.identity ?? undefined }));
  return { status, started: started[started.length - 1] };
}

async function telegrafCount(fleet: Fleet, h: FleetHost): Promise<number> {
  const r = await fleet.exec(h, 'pgrep -c -x telegraf || true', { timeoutMs: 10_000 });
  return Number(r.stdout.trim()) || 0;
}

/**
 * Waits until the onboarding runs `step` (install-agent: until ansible-playbook is a child of the worker). False when
 * the step ended between two looks (its timeline entry succeeded): that host is no use for this case.
 */
async function untilRunning(ctx: Ctx, o: Onboarding, step: KillStep): Promise<boolean> {
  const { client } = ctx.stack;
  const handle = client.workflow.getHandle(workflowIds.onboarding(o.hostId));
  const deadline = Date.now() + 5 * 60_000;
  for (;;) {
    const p = await pending(client, handle.workflowId, STEP[step].activity);
    if (p?.started) {
      if (step !== 'install-agent') return true;
      if (spawnSync('pgrep', ['-P', String(ctx.workers.current.pid), '-f', 'ansible-playbook']).status === 0) return true;
    } else if (!p) {
      const phase = await hostPhase(client, o.hostId);
      if (phase === 'failed' || phase?.startsWith('closed') || phase?.startsWith('needs-')) throw new Error(`${o.hostId} is ${phase} before ${step} was seen running`);
      const memo = (await handle.describe().catch(() => undefined))?.memo?.[STATUS_MEMO_KEY] as OnboardingStatus | undefined;
      if (phase === 'healthy' || memo?.steps?.some((s) => s.step === step && s.status === 'succeeded')) return false;
    }
    if (Date.now() > deadline) throw new Error(`${o.hostId}: ${step} not seen running within 5 min`);
    await sleep(step === 'tunnel' ? 25 : 50);
  }
}

interface SlowWait {
  step: CaseStep;
  dueAtMs: number;
  resumed: boolean;
  finished: boolean;
  done: Promise<unknown>;
}

/** Waits while a slow case's retry is due within `needMs` (+ margin), or it is recovering right now. */
async function gate(waits: SlowWait[], needMs: number): Promise<void> {
  for (;;) {
    const blocker = waits.find((w) => !w.finished && (w.resumed || Date.now() + needMs > w.dueAtMs - GATE_MARGIN_MS));
    if (!blocker) return;
    console.log(`  (waiting for ${blocker.step} to recover before the next case: its retry is due in ${fmtMs(Math.max(0, blocker.dueAtMs - Date.now()))})`);
    await blocker.done.catch(() => undefined);
  }
}

/**
 * Starts an onboarding per step (in the given order, each waited for until its step runs), kills the worker once,
 * starts a fresh one, and follows each interrupted step's recovery. Steps that had ended before the kill are
 * returned as missed (their hosts are discarded).
 */
async function killRound(ctx: Ctx, roundSteps: KillStep[], run: number, tryNo: number) {
  const { client } = ctx.stack;
  // Later steps first: each is reached (and waited in) while the earlier ones start behind it.
  const order = [...roundSteps].sort((a, b) => ONBOARD_STEPS.indexOf(b) - ONBOARD_STEPS.indexOf(a));
  const onbs: { step: KillStep; o: Onboarding }[] = [];
  const missed: KillStep[] = [];
  for (const step of order) {
    const o = await startOnboarding(ctx, step, run, isSlow(step));
    if (await untilRunning(ctx, o, step)) onbs.push({ step, o });
    else {
      missed.push(step);
      void o.dispose().catch(() => undefined);
    }
  }
  if (!onbs.length) return { followers: [], missed };
  const kill = await ctx.workers.kill();
  const [seen, readyAtMs] = await Promise.all([
    Promise.all(onbs.map(({ step, o }) => pending(client, workflowIds.onboarding(o.hostId), STEP[step].activity))),
    (async () => {
      for (const { o } of onbs) if (o.undoThrottle) releaseHostCpu(o.host);
      return ctx.workers.start();
    })(),
  ]);
  const followers: { wait: SlowWait; result: Promise<KillResult> }[] = [];
  onbs.forEach(({ step, o }, i) => {
    const before = seen[i];
    if (!before) {
      missed.push(step);
      void o.dispose().catch(() => undefined);
      return;
    }
    const spec = STEP[step];
    const lastBeat = Math.max(before.startedAtMs ?? 0, before.heartbeatAtMs ?? 0);
    const dueAtMs = spec.heartbeatMs ? lastBeat + spec.heartbeatMs + spec.retryMs : (before.startedAtMs ?? kill.atMs) + spec.startToCloseMs! + spec.retryMs;
    const wait: SlowWait = { step, dueAtMs, resumed: false, finished: false, done: Promise.resolve() };
    const result = follow(ctx, o, step, run, tryNo, before, kill, readyAtMs, wait).finally(() => {
      wait.finished = true;
      return o.dispose().catch(() => undefined);
    });
    wait.done = result;
    followers.push({ wait, result });
  });
  return { followers, missed };
}

/** Follows one interrupted step from the kill until the host is healthy. */
async function follow(
  ctx: Ctx,
  o: Onboarding,
  step: KillStep,
  run: number,
  tries: number,
  before: Pending,
  kill: { atMs: number; identity: string },
  readyAtMs: number,
  wait: SlowWait,
): Promise<KillResult> {
  const { client } = ctx.stack;
  const spec = STEP[step];
  const wf = workflowIds.onboarding(o.hostId);
  let resumed: Pending | undefined;
  let beatAtMs: number | undefined;
  const healthyAtMs = await untilHealthy(client, o.hostId, (spec.startToCloseMs ?? 0) + 5 * 60_000, async () => {
    if (resumed && (beatAtMs || !spec.heartbeatMs)) return;
    const p = await pending(client, wf, spec.activity);
    if (p && p.attempt > before.attempt && p.started) {
      resumed ??= p;
      wait.resumed = true;
      if (p.heartbeatAtMs && p.startedAtMs && p.heartbeatAtMs >= p.startedAtMs) beatAtMs ??= p.heartbeatAtMs;
    }
    // A slow step's retry is minutes away: look every second until shortly before it is due (less load meanwhile).
  }, () => (wait.resumed || Date.now() > wait.dueAtMs - 15_000 ? POLL_MS : 1_000));
  wait.resumed = true;
  const facts = await onboardingFacts(client, o.hostId, spec.activity);
  const fromHistory = facts.started && facts.started.attempt > before.attempt ? facts.started : undefined;
  const resumedAtMs = resumed?.startedAtMs ?? fromHistory?.atMs;
  const stepRecord = facts.status.steps.find((s) => s.step === step);
  const lastBeat = Math.max(before.startedAtMs ?? 0, before.heartbeatAtMs ?? 0);
  return {
    step,
    run,
    hostId: o.hostId,
    tries,
    killedAttempt: before.attempt,
    killedWorker: kill.identity,
    freshWorker: ctx.workers.current.identity,
    lastBeatAgeMs: kill.atMs - lastBeat,
    dueMs: wait.dueAtMs - kill.atMs,
    workerReadyMs: readyAtMs - kill.atMs,
    ...(resumedAtMs ? { resumedMs: resumedAtMs - kill.atMs, resumedSource: resumed?.startedAtMs ? 'describe' : 'history' } : {}),
    ...(resumed?.worker || fromHistory?.identity ? { resumedBy: resumed?.worker ?? fromHistory?.identity } : {}),
    ...(beatAtMs ? { firstHeartbeatMs: beatAtMs - kill.atMs } : {}),
    healthyMs: healthyAtMs - kill.atMs,
    ...(stepRecord?.endedAtMs ? { stepMs: stepRecord.endedAtMs - stepRecord.startedAtMs } : {}),
    totalMs: healthyAtMs - o.startedAtMs,
    ...(fromHistory || facts.started ? { attempts: (fromHistory ?? facts.started).attempt } : {}),
    telegrafs: await telegrafCount(ctx.fleet, o.host),
  };
}

/** One onboarding without a kill; the host stays (healthy, tunnel held) for the hold case. */
async function baselineRun(ctx: Ctx, run: number): Promise<{ result: BaselineResult; host: FleetHost; dispose: () => Promise<void> }> {
  const o = await startOnboarding(ctx, 'base', run, false);
  try {
    const healthyAtMs = await untilHealthy(ctx.stack.client, o.hostId, 5 * 60_000);
    const status = (await ctx.stack.client.workflow.getHandle(workflowIds.onboarding(o.hostId)).result()) as OnboardingStatus;
    return { result: { run, hostId: o.hostId, steps: stepDurations(status), totalMs: healthyAtMs - o.startedAtMs }, host: o.host, dispose: o.dispose };
  } catch (e) {
    await o.dispose().catch(() => undefined);
    throw e;
  }
}

/** SIGKILL while the tunnel keeper holds the forward of a healthy host. */
async function holdKill(ctx: Ctx, host: FleetHost, tunnelId: string, run: number): Promise<KillResult> {
  const { client } = ctx.stack;
  const wf = workflowIds.tunnel(tunnelId);
  const spec = STEP.hold;
  await until(`${tunnelId}: keeper connected`, async () => (await tunnelStatus(client, tunnelId)).state === 'connected', 60_000, 200);
  await pingUntilUp(ctx.fleet, host, TUNNEL_PORT, 30);
  await sleep(3_000); // held for a while: a few heartbeats
  const kill = await ctx.workers.kill();
  const up = pingUntilUp(ctx.fleet, host, TUNNEL_PORT, 120);
  const [before, readyAtMs] = await Promise.all([pending(client, wf, spec.activity), ctx.workers.start()]);
  if (!before) throw new Error(`${tunnelId}: no hold was running at the kill`);
  let resumed: Pending | undefined;
  let connectedAtMs: number | undefined;
  // Connected = the new attempt's own heartbeat says so (tunnelStatusFrom without the query: the keeper workflow's
  // tasks wait for the dead worker's sticky queue to time out, the activity's heartbeats do not); its server time.
  await until(`${tunnelId}: keeper connected again`, async () => {
    const desc = await client.workflow.getHandle(wf).describe();
    const raw = (desc.raw.pendingActivities ?? []).find((a) => a.activityType?.name === spec.activity);
    const attempt = raw?.attempt ?? 0;
    if (!raw || attempt <= before.attempt || raw.state !== STARTED) return false;
    resumed ??= { attempt, started: true, startedAtMs: optionalTsToMs(raw.lastStartedTime), worker: raw.lastWorkerIdentity ?? undefined };
    const obs = await observeDescription(client.options.loadedDataConverter, tunnelId, desc);
    if (tunnelStatusFrom(obs).state === 'connected') connectedAtMs = optionalTsToMs(raw.lastHeartbeatTime) ?? Date.now();
    return connectedAtMs;
  }, 120_000, POLL_MS);
  const upAtMs = await up;
  const lastBeat = Math.max(before.startedAtMs ?? 0, before.heartbeatAtMs ?? 0);
  return {
    step: 'hold',
    run,
    hostId: tunnelId,
    tries: 1,
    killedAttempt: before.attempt,
    killedWorker: kill.identity,
    freshWorker: ctx.workers.current.identity,
    lastBeatAgeMs: kill.atMs - lastBeat,
    dueMs: lastBeat + spec.heartbeatMs! + spec.retryMs - kill.atMs,
    workerReadyMs: readyAtMs - kill.atMs,
    ...(resumed?.startedAtMs ? { resumedMs: resumed.startedAtMs - kill.atMs, resumedSource: 'describe' as const, resumedBy: resumed.worker } : {}),
    ...(connectedAtMs ? { connectedMs: connectedAtMs - kill.atMs } : {}),
    healthyMs: upAtMs - kill.atMs,
    telegrafs: await telegrafCount(ctx.fleet, host),
  };
}

function printKill(k: KillResult): void {
  const hb = k.step === 'hold' ? `connected ${fmtMs(k.connectedMs ?? NaN)}` : `heartbeat again ${fmtMs(k.firstHeartbeatMs ?? NaN)}`;
  console.log(
    `  kill during ${k.step} (run ${k.run}, attempt ${k.killedAttempt}, last beat ${fmtMs(k.lastBeatAgeMs)} before): ` +
      `fresh worker polling ${fmtMs(k.workerReadyMs)}, resumed ${fmtMs(k.resumedMs ?? NaN)} (due ${fmtMs(k.dueMs)}) on ${k.resumedBy ?? '?'}, ${hb}, ` +
      `${k.step === 'hold' ? 'forward up' : 'healthy'} ${fmtMs(k.healthyMs)} after the kill`,
  );
}

function parseSteps(raw: string | undefined): CaseStep[] {
  if (!raw?.trim()) return DEFAULT_STEPS;
  const out = raw.split(',').map((s) => s.trim()) as CaseStep[];
  for (const s of out) if (!(s in STEP)) throw new Error(`STEPS: unknown step "${s}" (known: ${Object.keys(STEP).join(', ')})`);
  return out;
}

/** The median, the mean of the middle two for an even count (with two runs, nearest rank would report the lower). */
function mid(xs: readonly number[]): number {
  if (!xs.length) return NaN;
  const v = [...xs].sort((a, b) => a - b);
  const h = Math.floor(v.length / 2);
  return v.length % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}
