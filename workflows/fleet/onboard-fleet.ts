import {
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  proxyActivities,
  setHandler,
  sleep,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import { STATUS_MEMO_KEY, credentialProblem } from '../contracts';
import { FleetBook, type BookEntry } from './book';
import { correctedMember, correctionNames, memberInput } from './members';
import { planReconcile, type FleetPlan } from './plan';
import {
  approveFleetPlanUpdate,
  closeFleetUpdate,
  fleetInventoryUpdate,
  fleetMemberSignal,
  fleetMembersQuery,
  fleetStatusQuery,
  retryFleetUpdate,
  type FleetInput,
  type FleetRetryRecord,
  type FleetRetryRequest,
  type FleetSourceStatus,
  type FleetStatus,
  type FleetMember,
} from './messages';

type Activities = ReturnType<typeof createActivities>;

/** Tunable in tests; the defaults are what an operator gets. */
export interface FleetOptions {
  /** Hosts started per activity call (one signal-with-start each). */
  startBatch?: number;
  /** The memo (counts) is written at most this often: 5,000 hosts reporting do not write 5,000 memos. */
  publishEveryMs?: number;
  /** Continue-as-new once a run's history has this many events. */
  historyEventsPerRun?: number;
}
export const FLEET_DEFAULTS = { startBatch: 50, publishEveryMs: 1000, historyEventsPerRun: 10_000 } as const;

/** What a run hands the next one: the book (members and where they are), the retries, the clock. */
export interface FleetCarry {
  entries: BookEntry[];
  retries: FleetRetryRecord[];
  retrySeq: number;
  startedAtMs: number;
  settledAtMs?: number;
  source?: FleetSourceStatus;
  held?: FleetPlan & { members: FleetMember[] };
}

/** Retry records kept in the status (the oldest fall off). */
const MAX_RETRIES = 20;
/** Default largest share of a fleet one reconcile pass offboards without approval. */
export const DEFAULT_MAX_OFFBOARD_SHARE = 0.1;
/** Plans list at most this many hosts per kind (the counts say how many in all). */
const PLAN_LIST_MAX = 200;

const fleetHosts = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
  summary: 'fleet: start, retry or release host entities',
});

/**
 * `fleet/<fleetId>`: a named set of hosts onboarded with bounded concurrency. Each member is its own host entity
 * (`host/<id>`, started or joined with signal-with-start: a host in two fleets is one host), which reports every
 * phase change here; the fleet keeps counts, starts the next host when one settles, and retries what failed or
 * waits for a person, each host from its failed step, with corrected inputs if given. It never holds a host's state.
 */
export async function onboardFleet(input: FleetInput, options: FleetOptions = {}, carry?: FleetCarry): Promise<FleetStatus> {
  const opts = { ...FLEET_DEFAULTS, ...options };
  const now = () => Date.now();
  const book = new FleetBook(carry?.entries ?? input.members, now());
  const retries: FleetRetryRecord[] = carry?.retries ?? [];
  let retrySeq = carry?.retrySeq ?? 0;
  const startedAtMs = carry?.startedAtMs ?? now();
  let settledAtMs = carry?.settledAtMs;
  let state: FleetStatus['state'] = 'running';
  let dirty = true;
  let news = 0;
  const retryQueue: { record: FleetRetryRecord; request: FleetRetryRequest; picked: BookEntry[] }[] = [];
  let closeRequested: { offboard: boolean } | undefined;
  let source: FleetSourceStatus | undefined = carry?.source ?? (input.source ? { kind: input.source.kind, spec: input.source, defaultPort: input.defaults.target.port } : undefined);
  let held: (FleetPlan & { members: FleetMember[] }) | undefined = carry?.held;
  // Work a reconcile pass handed over, run by the main loop (activities are not run from handlers).
  const offboardQueue: string[] = [];
  const relabelQueue: { hostId: string; labels: Record<string, string> }[] = [];

  const status = (): FleetStatus => {
    const { counts, failures } = book.counts();
    return {
      fleetId: input.fleetId,
      state,
      total: book.size,
      counts,
      active: book.active(),
      concurrency: input.concurrency,
      startedAtMs,
      ...(settledAtMs ? { settledAtMs } : {}),
      retries: retries.map((r) => ({ ...r })),
      failures,
      ...(source ? { source: { ...source } } : {}),
    };
  };
  const publish = () => {
    dirty = false;
    upsertMemo({ [STATUS_MEMO_KEY]: status() });
  };
  const changed = () => {
    dirty = true;
    news++;
  };

  setHandler(fleetStatusQuery, status);
  setHandler(fleetMembersQuery, (q) => book.page(q ?? {}));
  setHandler(fleetMemberSignal, (r) => {
    if (book.report(r)) changed();
  });
  setHandler(
    retryFleetUpdate,
    (request) => {
      const picked = book.retryable(request.hostIds, request.phases);
      const record: FleetRetryRecord = { id: `retry-${++retrySeq}`, requestedAtMs: now(), hosts: picked.length, corrected: correctionNames(request.corrections) };
      retries.push(record);
      if (retries.length > MAX_RETRIES) retries.splice(0, retries.length - MAX_RETRIES);
      retryQueue.push({ record, request, picked });
      changed();
      return { accepted: true as const, retryId: record.id, hosts: picked.length };
    },
    {
      validator: (request: FleetRetryRequest) => {
        if (closeRequested) throw new Error(`fleet ${input.fleetId} is closing`);
        const problem = retryProblem(request);
        if (problem) throw new Error(problem);
        const unknown = (request.hostIds ?? []).filter((id) => !book.has(id));
        if (unknown.length > 0) throw new Error(`not in fleet ${input.fleetId}: ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ', …' : ''}`);
        if (book.retryable(request.hostIds, request.phases).length === 0) throw new Error('no host of this fleet failed or waits for credentials (nothing to retry)');
      },
    },
  );
  /** Applies a plan: new members join the book (the loop starts them), gone ones and relabels are queued. */
  const apply = (plan: FleetPlan & { members: FleetMember[] }) => {
    for (const m of plan.members) book.add(m, now());
    for (const r of plan.remove) if (!offboardQueue.includes(r.hostId)) offboardQueue.push(r.hostId);
    relabelQueue.push(...plan.relabel);
    source = {
      ...(source ?? { kind: input.source?.kind ?? 'file' }),
      lastApplied: { atMs: now(), added: plan.add.length, removed: plan.remove.length, relabeled: plan.relabel.length, unsupported: plan.unsupported.length, ignored: plan.ignored.length },
    };
    delete source.held;
    held = undefined;
    changed();
  };
  const shown = (plan: FleetPlan & { members?: FleetMember[] }): FleetPlan => {
    const { members: _members, ...rest } = plan;
    return {
      ...rest,
      add: rest.add.slice(0, PLAN_LIST_MAX),
      remove: rest.remove.slice(0, PLAN_LIST_MAX),
      relabel: rest.relabel.slice(0, PLAN_LIST_MAX),
      unsupported: rest.unsupported.slice(0, PLAN_LIST_MAX),
      ignored: rest.ignored.slice(0, PLAN_LIST_MAX),
    };
  };
  setHandler(
    fleetInventoryUpdate,
    (report) => {
      if (report.error || !report.read) {
        const error = report.error ?? { type: 'InventoryUnreadable', message: 'no read' };
        if (!report.dryRun) {
          source = { ...(source ?? { kind: input.source?.kind ?? 'file' }), lastError: { ...error, atMs: now() } };
          changed();
        }
        return { error: `${error.type}: ${error.message}` };
      }
      const read = report.read;
      const members = book.all().filter((e) => !offboardQueue.includes(e.member.hostId)).map((e) => e.member);
      const plan = planReconcile(members, read, input.defaults, { maxOffboardShare: input.maxOffboardShare ?? DEFAULT_MAX_OFFBOARD_SHARE });
      if (report.dryRun) return shown(plan);
      source = { ...(source ?? { kind: input.source?.kind ?? 'file' }), lastReadAtMs: read.readAtMs, lastDigest: read.digest };
      delete source.lastError;
      if (plan.held) {
        held = plan;
        source.held = { digest: plan.digest, remove: plan.remove.length, allowed: plan.held.allowed, reason: plan.held.reason, atMs: now() };
        changed();
      } else {
        apply(plan);
      }
      return shown(plan);
    },
    {
      validator: (report: { read?: unknown; error?: unknown }) => {
        if (closeRequested) throw new Error(`fleet ${input.fleetId} is closing`);
        if (!input.source) throw new Error(`fleet ${input.fleetId} has no source`);
        if (!report || (report.read === undefined && report.error === undefined)) throw new Error('a read or an error is required');
      },
    },
  );
  setHandler(
    approveFleetPlanUpdate,
    () => {
      const plan = held!;
      apply(plan);
      return { accepted: true as const, plan: shown(plan) };
    },
    {
      validator: (arg: { digest: string }) => {
        if (!held) throw new Error(`fleet ${input.fleetId} has no plan waiting for approval`);
        if (!arg || arg.digest !== held.digest) throw new Error(`the plan waiting for approval is ${held.digest}, not the one given (read the plan again)`);
      },
    },
  );
  setHandler(
    closeFleetUpdate,
    (arg: { offboard?: boolean }) => {
      closeRequested = { offboard: arg?.offboard === true };
      changed();
      return { accepted: true as const };
    },
    {
      validator: (_arg: { offboard?: boolean }) => {
        if (closeRequested) throw new Error(`fleet ${input.fleetId} is already closing`);
      },
    },
  );

  // The memo at most every publishEveryMs, on news only.
  const publisher = CancellationScope.cancellable(async () => {
    for (;;) {
      await condition(() => dirty);
      publish();
      await sleep(opts.publishEveryMs);
    }
  }).catch(() => undefined);
  void publisher;

  for (;;) {
    if (closeRequested) break;
    // Start members while there are free slots.
    const next = book.nextToStart(input.concurrency).slice(0, opts.startBatch);
    if (next.length > 0) {
      for (const m of next) book.started(m.hostId, now());
      changed();
      const result = await fleetHosts.startFleetHosts({ fleetId: input.fleetId, inputs: next.map((m) => memberInput(input.defaults, m)) });
      for (const f of result.refused) {
        book.report({ hostId: f.hostId, phase: 'failed', error: { type: 'StartRefused', message: f.why }, atMs: now() });
      }
      continue;
    }
    if (offboardQueue.length > 0) {
      const ids = offboardQueue.splice(0, opts.startBatch);
      await fleetHosts.releaseFleetHosts({ fleetId: input.fleetId, hostIds: ids, offboard: true });
      for (const id of ids) book.remove(id);
      changed();
      continue;
    }
    if (relabelQueue.length > 0) {
      const batch = relabelQueue.splice(0, opts.startBatch);
      const result = await fleetHosts.relabelFleetHosts({ fleetId: input.fleetId, changes: batch });
      const refused = new Set(result.refused.map((r) => r.hostId));
      // Accepted ones are the members' labels from now on; a refused one (not healthy yet) differs again next pass.
      for (const c of batch) {
        const e = book.get(c.hostId);
        if (e && !refused.has(c.hostId)) book.replaceMember({ ...e.member, labels: c.labels });
      }
      changed();
      continue;
    }
    const job = retryQueue.shift();
    if (job) {
      await runRetry(job.record, job.request, job.picked);
      continue;
    }
    if (book.settled()) {
      if (state !== 'settled') {
        state = 'settled';
        settledAtMs = now();
        changed();
      }
    } else if (state === 'settled') {
      state = 'running';
      settledAtMs = undefined;
      changed();
    }
    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength >= opts.historyEventsPerRun) {
      publish();
      await condition(allHandlersFinished);
      return continueAsNew<typeof onboardFleet>({ ...input, members: [] }, options, {
        entries: book.snapshot(),
        retries,
        retrySeq,
        startedAtMs,
        ...(settledAtMs ? { settledAtMs } : {}),
        ...(source ? { source } : {}),
        ...(held ? { held } : {}),
      });
    }
    const seen = news;
    await condition(() => news !== seen || !!closeRequested || retryQueue.length > 0 || offboardQueue.length > 0 || relabelQueue.length > 0);
  }

  // Closing: the hosts stop reporting here; with `offboard` each is offboarded (its entity runs the saga).
  state = 'closing';
  publish();
  const ids = book.all().map((e) => e.member.hostId);
  for (let i = 0; i < ids.length; i += opts.startBatch) {
    await fleetHosts.releaseFleetHosts({ fleetId: input.fleetId, hostIds: ids.slice(i, i + opts.startBatch), offboard: closeRequested.offboard });
  }
  state = 'closed';
  publish();
  await condition(allHandlersFinished);
  return status();

  /** Hands each picked host its retry: a failed one onboards again from its failed step; a waiting one gets the login. */
  async function runRetry(record: FleetRetryRecord, request: FleetRetryRequest, picked: BookEntry[]): Promise<void> {
    const hosts = picked.map((e) => {
      const member = correctedMember(e.member, request.corrections);
      book.replaceMember(member);
      return { hostId: member.hostId, phase: e.phase as 'failed' | 'needs-credentials', input: memberInput(input.defaults, member) };
    });
    for (let i = 0; i < hosts.length; i += opts.startBatch) {
      const slice = hosts.slice(i, i + opts.startBatch);
      // Marked before the hosts hear of it: their first reports after the retry are newer than this and count.
      for (const h of slice) book.started(h.hostId, now(), true);
      const result = await fleetHosts.retryFleetHosts({ fleetId: input.fleetId, hosts: slice, ...(request.corrections ? { corrections: request.corrections } : {}) });
      for (const r of result.refused) {
        const before = slice.find((h) => h.hostId === r.hostId);
        if (before) book.report({ hostId: r.hostId, phase: before.phase, error: { type: 'RetryRefused', message: r.why }, atMs: now() });
      }
      if (result.refused.length > 0) record.refused = [...(record.refused ?? []), ...result.refused].slice(0, 50);
    }
    record.endedAtMs = now();
    changed();
  }
}

/** Why a retry request is unusable, or null (the API checks the same; the workflow is the last gate). */
export function retryProblem(r: unknown): string | null {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return 'a retry request object is required';
  const req = r as FleetRetryRequest;
  if (req.hostIds !== undefined && (!Array.isArray(req.hostIds) || req.hostIds.some((h) => typeof h !== 'string'))) return 'hostIds must be a list of host ids';
  if (req.phases !== undefined && (!Array.isArray(req.phases) || req.phases.some((p) => p !== 'failed' && p !== 'needs-credentials'))) return 'phases may hold "failed" and "needs-credentials"';
  const c = req.corrections;
  if (c !== undefined) {
    if (typeof c !== 'object' || c === null) return 'corrections must be an object';
    if (c.credential !== undefined) {
      const p = credentialProblem(c.credential);
      if (p) return `corrections.credential: ${p}`;
    }
    if (c.port !== undefined && (!Number.isInteger(c.port) || c.port < 1 || c.port > 65535)) return 'corrections.port must be 1-65535';
    if (c.via !== undefined && c.via !== null && (typeof c.via !== 'object' || credentialProblem(c.via.credential))) return 'corrections.via must be a bastion login';
  }
  return null;
}
