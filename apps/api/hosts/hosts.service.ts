import { Injectable } from '@nestjs/common';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { STATUS_MEMO_KEY, workflowIds, type OnboardHostInput, type OnboardingStatus, type SshHop } from '../../../workflows/contracts';
import { approveHostKeyUpdate, onboardingStatusQuery, provideCredentialsUpdate } from '../../../workflows/messages';
import { HostAddressKey, HostIdKey, OnboardingPhaseKey } from '../../../workflows/search-attributes';
import { ErrorCode } from '../common/error-codes';
import { ShortCache } from '../common/short-cache';
import { TemporalGateway, workflowRef } from '../temporal/temporal.gateway';
import { rethrowAsApiError } from '../temporal/temporal-errors';
import { TunnelsService } from '../tunnels/tunnels.service';
import type { CreateHostDto } from './dto/create-host.dto';
import type { ProvideCredentialsDto } from './dto/credentials.dto';
import type { HostAcceptedDto, HostDetailsDto, HostListDto } from './dto/host-responses.dto';
import type { ListHostsQueryDto } from './dto/list-hosts.query';
import { toOnboardHostInput, toSshCredential } from './onboard-input.mapper';
import { onboardingDetails, onboardingSummary } from './onboarding-metadata';

export const ONBOARDING_WORKFLOW_TYPE = 'onboardHost';


type StatusFields = Omit<Partial<OnboardingStatus>, 'hostId'>;

/**
 * How long one host's status is reused. Dashboards and CLIs poll; with this, N watchers of a host cost Temporal
 * one describe per second instead of N, which is what keeps the endpoint fast while workers are busy.
 */
export const STATUS_CACHE_MS = 1000;

@Injectable()
export class HostsService {
  private readonly details = new ShortCache<HostDetailsDto>(STATUS_CACHE_MS);

  constructor(
    private readonly temporal: TemporalGateway,
    private readonly tunnels: TunnelsService,
  ) {}

  /** Starts (or joins) `onboard/<hostId>`: the same host posted twice is one onboarding. */
  async create(dto: CreateHostDto): Promise<HostAcceptedDto> {
    const { client, config } = this.temporal;
    const input = toOnboardHostInput(dto, { sealer: config.keys.sealer, defaultInfluxUrl: config.influx.url });
    const workflowId = workflowIds.onboarding(input.hostId);
    await this.carryPins(input);
    try {
      const handle = await this.temporal.call(() =>
        client.workflow.start(ONBOARDING_WORKFLOW_TYPE, {
          args: [input],
          workflowId,
          taskQueue: config.temporal.onboardingTaskQueue,
          workflowIdConflictPolicy: 'USE_EXISTING',
          // Shown in the Temporal UI without decoding payloads; never anything secret.
          staticSummary: onboardingSummary(input),
          staticDetails: onboardingDetails(input),
          typedSearchAttributes: [
            { key: HostIdKey, value: input.hostId },
            { key: HostAddressKey, value: input.target.address },
            { key: OnboardingPhaseKey, value: 'probing' },
          ],
        }),
      );
      this.details.invalidate(input.hostId);
      return { id: input.hostId, workflowId, runId: handle.firstExecutionRunId, statusUrl: statusUrl(input.hostId) };
    } catch (err) {
      rethrowAsApiError(err, ErrorCode.HostNotFound);
    }
  }

  /**
   * Trust on first use happens once per host, not once per run: a host posted again after its run closed is held
   * to the keys pinned before (an operator who names a key in the request still decides). A changed key then parks
   * the new run in needs-host-key-approval instead of being trusted silently.
   */
  private async carryPins(input: OnboardHostInput): Promise<void> {
    if (input.target.hostKeySha256 && (!input.target.via || input.target.via.hostKeySha256)) return;
    const handle = this.temporal.client.workflow.getHandle(workflowIds.onboarding(input.hostId));
    let previous: StatusFields | undefined;
    try {
      const desc = await this.temporal.call(() => handle.describe());
      if (desc.status.name === 'RUNNING') return; // the running onboarding is joined; this input is not used
      previous = desc.memo?.[STATUS_MEMO_KEY] as StatusFields | undefined;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return;
      rethrowAsApiError(err, ErrorCode.HostNotFound);
    }
    const sameHost = previous && previous.address === input.target.address;
    if (!sameHost) return;
    if (!input.target.hostKeySha256 && typeof previous?.hostKeySha256 === 'string') input.target.hostKeySha256 = previous.hostKeySha256;
    if (input.target.via && !input.target.via.hostKeySha256 && typeof previous?.bastionHostKeySha256 === 'string') {
      input.target.via.hostKeySha256 = previous.bastionHostKeySha256;
    }
  }

  async list(query: ListHostsQueryDto): Promise<HostListDto> {
    // `phase` is one of ONBOARDING_PHASES (validated), so it is safe inside the visibility query.
    const filter = query.phase ? ` AND OnboardingPhase='${query.phase}'` : '';
    const page = await this.temporal
      .list(`WorkflowType='${ONBOARDING_WORKFLOW_TYPE}'${filter}`, query.pageSize, query.pageToken)
      .catch((e) => rethrowAsApiError(e, ErrorCode.HostNotFound));
    return {
      items: page.executions.map((info) => {
        const sa = info.typedSearchAttributes;
        return {
          id: sa.get(HostIdKey) ?? info.workflowId.replace(/^onboard\//, ''),
          address: sa.get(HostAddressKey),
          phase: sa.get(OnboardingPhaseKey),
          ...workflowRef(info),
        };
      }),
      nextPageToken: page.nextPageToken,
    };
  }

  /**
   * Live status from the workflow's query while it runs; for a closed run its result (or failure).
   * With no worker answering, what visibility knows (phase, address) is returned with source "visibility".
   */
  get(id: string): Promise<HostDetailsDto> {
    return this.details.get(id, () => this.load(id));
  }

  private async load(id: string): Promise<HostDetailsDto> {
    const handle = this.temporal.client.workflow.getHandle(workflowIds.onboarding(id));
    const desc = await this.temporal.describe(handle, ErrorCode.HostNotFound);
    const sa = desc.typedSearchAttributes;
    let source: HostDetailsDto['source'] = 'visibility';
    let status: StatusFields = {};

    // Running: the workflow's memo has its status (describe answers it without a worker); runs started by
    // older code have no memo and are asked with a query.
    const memo = desc.memo?.[STATUS_MEMO_KEY] as StatusFields | undefined;
    if (desc.status.name === 'RUNNING' && memo && typeof memo === 'object') {
      status = memo;
      source = 'memo';
    } else if (desc.status.name === 'RUNNING') {
      const live = await this.temporal.queryIfAnswered(handle, onboardingStatusQuery, ErrorCode.HostNotFound);
      if (live) {
        status = live;
        source = 'query';
      }
    } else {
      ({ status, source } = await this.closedRunStatus(handle, desc.status.name));
    }

    const [activities, tunnel] = await Promise.all([
      this.temporal.pendingActivities(desc),
      status.tunnelId ? this.tunnels.brief(status.tunnelId) : Promise.resolve(undefined),
    ]);
    const { steps, phase, address, ...rest } = status;
    return {
      id,
      ...workflowRef(desc),
      source,
      phase: phase ?? sa.get(OnboardingPhaseKey),
      address: address ?? sa.get(HostAddressKey),
      steps: steps ?? [],
      ...rest,
      ...(tunnel ? { tunnel } : {}),
      activities,
    };
  }

  async provideCredentials(id: string, dto: ProvideCredentialsDto): Promise<{ accepted: true }> {
    const credential = toSshCredential(dto, this.temporal.config.keys.sealer);
    const handle = this.temporal.client.workflow.getHandle(workflowIds.onboarding(id));
    try {
      return await this.temporal.update(handle, provideCredentialsUpdate, [credential, { hop: dto.hop }], ErrorCode.HostNotFound);
    } finally {
      this.details.invalidate(id); // the next read must see what the update did
    }
  }

  async approveHostKey(id: string, hostKeySha256: string, hop?: SshHop): Promise<{ accepted: true }> {
    const handle = this.temporal.client.workflow.getHandle(workflowIds.onboarding(id));
    try {
      return await this.temporal.update(handle, approveHostKeyUpdate, [{ hostKeySha256, ...(hop ? { hop } : {}) }], ErrorCode.HostNotFound);
    } finally {
      this.details.invalidate(id);
    }
  }

  private async closedRunStatus(
    handle: ReturnType<TemporalGateway['client']['workflow']['getHandle']>,
    statusName: string,
  ): Promise<{ status: StatusFields; source: HostDetailsDto['source'] }> {
    try {
      const result = await this.temporal.call(() => handle.result());
      return isStatusLike(result) ? { status: result, source: 'result' } : { status: {}, source: 'visibility' };
    } catch (err) {
      if (err instanceof WorkflowFailedError) {
        const cause = err.cause;
        const type = cause instanceof ApplicationFailure && cause.type ? cause.type : (cause?.name ?? statusName);
        return { status: { phase: 'failed', lastError: { type, message: cause?.message ?? err.message } }, source: 'result' };
      }
      rethrowAsApiError(err, ErrorCode.HostNotFound);
    }
  }
}

export function statusUrl(hostId: string): string {
  return `/v1/hosts/${encodeURIComponent(hostId)}`;
}

function isStatusLike(v: unknown): v is StatusFields {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as { phase?: unknown }).phase === 'string';
}
