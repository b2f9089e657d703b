import { cpus } from 'node:os';
import { Injectable } from '@nestjs/common';
import type { WorkflowExecutionDescription, WorkflowExecutionInfo } from '@temporalio/client';
import { fleetConcurrencyDefault } from '../../../lib/config';
import { STATUS_MEMO_KEY, workflowIds } from '../../../workflows/contracts';
import { closeFleetUpdate, fleetMembersQuery, retryFleetUpdate, type FleetStatus } from '../../../workflows/fleet/messages';
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
import { toFleetCorrections, toFleetInput } from './fleet-input.mapper';

export const FLEET_WORKFLOW_TYPE = 'onboardFleet';

@Injectable()
export class FleetsService {
  private readonly defaultConcurrency: number;

  constructor(private readonly temporal: TemporalGateway) {
    this.defaultConcurrency = fleetConcurrencyDefault(process.env, cpus().length);
  }

  /** Starts the fleet `fleet/<name>` (or returns the running one of that name: posting twice is one fleet). */
  async create(dto: CreateFleetDto): Promise<FleetAcceptedDto> {
    const { client, config } = this.temporal;
    const input = toFleetInput(dto, { sealer: config.keys.sealer, defaultInfluxUrl: config.influx.url, defaultConcurrency: this.defaultConcurrency });
    const workflowId = workflowIds.fleet(input.fleetId);
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
      return { id: input.fleetId, workflowId, runId: handle.firstExecutionRunId, hosts: input.members.length, statusUrl: statusUrl(input.fleetId) };
    } catch (err) {
      rethrowAsApiError(err, ErrorCode.FleetNotFound);
    }
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
    return this.temporal.update(this.handle(id), closeFleetUpdate, [{ offboard }], ErrorCode.FleetNotFound);
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

export function statusUrl(fleetId: string): string {
  return `/v1/fleets/${encodeURIComponent(fleetId)}`;
}
