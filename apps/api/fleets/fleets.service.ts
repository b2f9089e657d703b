import { cpus } from 'node:os';
import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, WorkflowFailedError, type WorkflowExecutionDescription, type WorkflowExecutionInfo } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { fleetConcurrencyDefault } from '../../../lib/config';
import { STATUS_MEMO_KEY, workflowIds } from '../../../workflows/contracts';
import { approveFleetPlanUpdate, closeFleetUpdate, fleetMembersQuery, retryFleetUpdate, type FleetInput, type FleetStatus } from '../../../workflows/fleet/messages';
import type { FleetPlan } from '../../../workflows/fleet/plan';
import type { ReconcileFleetInput, ReconcileResult } from '../../../workflows/fleet/reconcile-fleet';
import { ApiError } from '../common/api-error';
import { ErrorCode } from '../common/error-codes';
import { TemporalGateway, workflowRef } from '../temporal/temporal.gateway';
import { rethrowAsApiError } from '../temporal/temporal-errors';
import { statusUrl as hostStatusUrl } from '../hosts/hosts.service';
import type { CreateFleetDto } from './dto/create-fleet.dto';
import type { FleetAcceptedDto, FleetDetailsDto, FleetHostsPageDto, FleetListDto, FleetRetryAcceptedDto } from './dto/fleet-responses.dto';
import type { ListFleetHostsQueryDto } from './dto/list-fleet-hosts.query';
import type { RetryFleetDto } from './dto/retry-fleet.dto';
import type { PageQueryDto } from '../common/page-query.dto';
import { toFleetCorrections, toFleetInput, toSourceFleetInput } from './fleet-input.mapper';

export const FLEET_WORKFLOW_TYPE = 'onboardFleet';
export const RECONCILE_WORKFLOW_TYPE = 'reconcileFleet';
/** Default seconds between reconcile passes of a fleet with a source. */
export const DEFAULT_RECONCILE_EVERY_S = 600;
/** How long the API waits for a source to be read (checking a new fleet's source, or a dry-run plan). */
const SOURCE_READ_MS = 60_000;

export function reconcileScheduleId(fleetId: string): string {
  return `reconcile-${fleetId}`;
}

@Injectable()
export class FleetsService {
  private readonly defaultConcurrency: number;

  constructor(private readonly temporal: TemporalGateway) {
    this.defaultConcurrency = fleetConcurrencyDefault(process.env, cpus().length);
  }

  /** Starts the fleet `fleet/<name>` (or returns the running one of that name: posting twice is one fleet). */
  async create(dto: CreateFleetDto): Promise<FleetAcceptedDto> {
    const { client, config } = this.temporal;
    const ctx = { sealer: config.keys.sealer, defaultInfluxUrl: config.influx.url, defaultConcurrency: this.defaultConcurrency };
    const input = dto.source ? toSourceFleetInput(dto, ctx) : toFleetInput(dto, ctx);
    const workflowId = workflowIds.fleet(input.fleetId);
    // A source must be readable (the workers' allowlist, its format) before anything starts: a clear 400 now.
    if (input.source) await this.reconcileOnce(input, { readOnly: true });
    try {
      const handle = await this.temporal.call(() =>
        client.workflow.start(FLEET_WORKFLOW_TYPE, {
          args: [input],
          workflowId,
          taskQueue: config.temporal.onboardingTaskQueue,
          workflowIdConflictPolicy: 'USE_EXISTING',
          staticSummary: `Fleet ${input.fleetId}: ${input.members.length} hosts, ${input.concurrency} at once`,
        }),
      );
      if (input.source) await this.ensureReconcileSchedule(input, dto.reconcileEverySeconds ?? DEFAULT_RECONCILE_EVERY_S);
      return { id: input.fleetId, workflowId, runId: handle.firstExecutionRunId, hosts: input.members.length, statusUrl: statusUrl(input.fleetId) };
    } catch (err) {
      if (err instanceof ApiError) throw err;
      rethrowAsApiError(err, ErrorCode.FleetNotFound);
    }
  }

  /** The Schedule that runs a pass every interval (overlap SKIP), the first one at once. An existing one is kept. */
  private async ensureReconcileSchedule(input: FleetInput, everySeconds: number): Promise<void> {
    const { client, config } = this.temporal;
    const args: [ReconcileFleetInput] = [{ fleetId: input.fleetId, source: input.source!, defaultPort: input.defaults.target.port }];
    try {
      await this.temporal.call(() =>
        client.schedule.create({
          scheduleId: reconcileScheduleId(input.fleetId),
          spec: { intervals: [{ every: everySeconds * 1000 }] },
          action: { type: 'startWorkflow', workflowType: RECONCILE_WORKFLOW_TYPE, workflowId: `reconcile/${input.fleetId}`, taskQueue: config.temporal.onboardingTaskQueue, args, workflowExecutionTimeout: '15 minutes' },
          policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: everySeconds * 1000 },
          state: { triggerImmediately: true, note: `reconcile fleet ${input.fleetId} with its ${input.source!.kind} source` },
        }),
      );
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    }
  }

  /** One pass run by the API and waited for: a read-only check of a source, or a dry-run plan. */
  private async reconcileOnce(input: Pick<FleetInput, 'fleetId' | 'source' | 'defaults'>, mode: { readOnly?: boolean; dryRun?: boolean }): Promise<ReconcileResult> {
    const { client, config } = this.temporal;
    try {
      return await this.temporal.call(
        () =>
          client.workflow.execute(RECONCILE_WORKFLOW_TYPE, {
            args: [{ fleetId: input.fleetId, source: input.source!, defaultPort: input.defaults.target.port, ...mode }],
            workflowId: `reconcile-${mode.dryRun ? 'plan' : 'check'}/${input.fleetId}/${randomUUID()}`,
            taskQueue: config.temporal.onboardingTaskQueue,
            workflowExecutionTimeout: SOURCE_READ_MS,
          }) as Promise<ReconcileResult>,
        SOURCE_READ_MS + 5000,
      );
    } catch (err) {
      if (err instanceof WorkflowFailedError) {
        const cause = err.cause instanceof ApplicationFailure ? err.cause : undefined;
        const type = cause?.type ?? 'InventoryUnreadable';
        throw new ApiError(type === 'InvalidInput' ? 400 : 422, ErrorCode.InventoryUnreadable, `the source could not be read: ${type}: ${cause?.message ?? err.message}`);
      }
      throw err;
    }
  }

  /** What the next pass would do (a dry run: nothing is applied). */
  async plan(id: string): Promise<FleetPlan & { held: FleetPlan['held'] }> {
    const desc = await this.temporal.describe(this.handle(id), ErrorCode.FleetNotFound);
    const src = (desc.memo?.[STATUS_MEMO_KEY] as FleetStatus | undefined)?.source;
    if (!src?.spec) throw new ApiError(409, ErrorCode.Conflict, `fleet ${id} has no source to plan from`);
    if (desc.status.name !== 'RUNNING') throw new ApiError(409, ErrorCode.Conflict, `fleet ${id} is not running (${desc.status.name})`);
    const r = await this.reconcileOnce({ fleetId: id, source: src.spec, defaults: { target: { port: src.defaultPort ?? 22 } } as FleetInput['defaults'] }, { dryRun: true });
    if (!('plan' in r)) throw new ApiError(500, ErrorCode.Internal, 'the dry run returned no plan');
    return { ...r.plan, held: r.plan.held };
  }

  /** Applies the plan held for approval, named by its digest. */
  async approvePlan(id: string, digest: string): Promise<{ accepted: true; plan: FleetPlan }> {
    return this.temporal.update(this.handle(id), approveFleetPlanUpdate, [{ digest }], ErrorCode.FleetNotFound);
  }

  async list(query: PageQueryDto): Promise<FleetListDto> {
    const page = await this.temporal.list(`WorkflowType = '${FLEET_WORKFLOW_TYPE}'`, query.pageSize, query.pageToken).catch((e) => rethrowAsApiError(e, ErrorCode.FleetNotFound));
    return { items: page.executions.map((info) => details(info)), nextPageToken: page.nextPageToken };
  }

  async get(id: string): Promise<FleetDetailsDto> {
    const desc = await this.temporal.describe(this.handle(id), ErrorCode.FleetNotFound);
    return details(desc);
  }

  /** A page of the fleet's hosts, from the fleet itself (it answers while a worker runs). */
  async hosts(id: string, q: ListFleetHostsQueryDto): Promise<FleetHostsPageDto> {
    const handle = this.handle(id);
    const desc = await this.temporal.describe(handle, ErrorCode.FleetNotFound);
    if (desc.status.name !== 'RUNNING') throw new ApiError(409, ErrorCode.Conflict, `fleet ${id} is not running (${desc.status.name}): its hosts are listed while it runs`);
    const page = await this.temporal
      .call(() => handle.query(fleetMembersQuery, { ...(q.phase ? { phase: q.phase } : {}), offset: q.offset, limit: q.pageSize }), this.temporal.timeouts.queryMs)
      .catch((e) => rethrowAsApiError(e, ErrorCode.FleetNotFound));
    return {
      items: page.items.map((m) => ({
        hostId: m.hostId,
        address: m.address,
        phase: m.phase,
        ...(m.reason ? { reason: m.reason } : {}),
        ...(m.error ? { error: { type: m.error.type, message: m.error.message } } : {}),
        since: m.since,
        retries: m.retries,
        statusUrl: hostStatusUrl(m.hostId),
      })),
      total: page.total,
      ...(page.next !== undefined ? { nextOffset: page.next } : {}),
    };
  }

  async retry(id: string, dto: RetryFleetDto): Promise<FleetRetryAcceptedDto> {
    const corrections = toFleetCorrections(dto, { sealer: this.temporal.config.keys.sealer, defaultInfluxUrl: this.temporal.config.influx.url });
    const r = await this.temporal.update(
      this.handle(id),
      retryFleetUpdate,
      [{ ...(dto.hostIds ? { hostIds: dto.hostIds } : {}), ...(dto.phases ? { phases: dto.phases } : {}), ...(corrections ? { corrections } : {}) }],
      ErrorCode.FleetNotFound,
    );
    return { accepted: r.accepted, retryId: r.retryId, hosts: r.hosts, statusUrl: statusUrl(id) };
  }

  /** Ends the fleet: its hosts stop reporting to it; with offboard, each is offboarded too. */
  async remove(id: string, offboard: boolean): Promise<{ accepted: true }> {
    const accepted = await this.temporal.update(this.handle(id), closeFleetUpdate, [{ offboard }], ErrorCode.FleetNotFound);
    // No more passes: the source no longer steers hosts the fleet let go.
    await this.temporal.call(() => this.temporal.client.schedule.getHandle(reconcileScheduleId(id)).delete()).catch((err) => {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    });
    return accepted;
  }

  private handle(id: string) {
    return this.temporal.client.workflow.getHandle(workflowIds.fleet(id));
  }
}

/** A fleet as the API shows it, from its memo (no query: the read path needs no worker). */
function details(info: WorkflowExecutionInfo | WorkflowExecutionDescription): FleetDetailsDto {
  const id = info.workflowId.replace(/^fleet\//, '');
  const memo = info.memo?.[STATUS_MEMO_KEY] as FleetStatus | undefined;
  const s = memo && typeof memo === 'object' && typeof memo.state === 'string' ? memo : undefined;
  return {
    id,
    ...workflowRef(info),
    source: s ? 'memo' : 'visibility',
    state: s?.state ?? (info.status.name === 'RUNNING' ? 'running' : 'closed'),
    total: s?.total ?? 0,
    counts: { ...(s?.counts ?? {}) } as Record<string, number>,
    failures: { ...(s?.failures ?? {}) },
    active: s?.active ?? 0,
    concurrency: s?.concurrency ?? 0,
    ...(s?.settledAtMs ? { settledAtMs: s.settledAtMs } : {}),
    ...(s?.source ? { inventory: sourceView(s.source) } : {}),
    retries: (s?.retries ?? []).map((r) => ({
      id: r.id,
      requestedAtMs: r.requestedAtMs,
      hosts: r.hosts,
      corrected: [...r.corrected],
      ...(r.refused ? { refused: r.refused.map((x) => ({ hostId: x.hostId, why: x.why })) } : {}),
      ...(r.endedAtMs ? { endedAtMs: r.endedAtMs } : {}),
    })),
  };
}

function sourceView(x: NonNullable<FleetStatus['source']>) {
  const spec = x.spec;
  return {
    kind: x.kind,
    ...(spec ? { path: 'path' in spec ? spec.path : undefined, url: 'url' in spec ? spec.url : undefined, group: 'group' in spec ? spec.group : undefined } : {}),
    lastReadAtMs: x.lastReadAtMs,
    lastDigest: x.lastDigest,
    ...(x.lastError ? { lastError: { type: x.lastError.type, message: x.lastError.message, atMs: x.lastError.atMs } } : {}),
    ...(x.lastApplied ? { lastApplied: { ...x.lastApplied } } : {}),
    ...(x.held ? { held: { ...x.held } } : {}),
  };
}

export function statusUrl(fleetId: string): string {
  return `/v1/fleets/${encodeURIComponent(fleetId)}`;
}
