import { Injectable } from '@nestjs/common';
import { WorkflowFailedError, WorkflowNotFoundError, type WorkflowExecutionDescription, type WorkflowHandle } from '@temporalio/client';
import {
  approveRepairHostKeyUpdate,
  provideRepairCredentialsUpdate,
  changeHostUpdate,
  offboardHostUpdate,
  rotateKeyUpdate,
  type ChangeRecord,
  type HostChange,
  type HostStatus,
} from '../../../workflows/host/messages';
import { ApplicationFailure } from '@temporalio/common';
import { STATUS_MEMO_KEY, workflowIds, type OnboardHostInput, type OnboardingStatus, type SshHop } from '../../../workflows/contracts';
import { approveHostKeyUpdate, onboardingStatusQuery, provideCredentialsUpdate } from '../../../workflows/messages';
import { HostAddressKey, HostIdKey, OnboardingPhaseKey } from '../../../workflows/search-attributes';
import { ApiError } from '../common/api-error';
import { ErrorCode } from '../common/error-codes';
import { ShortCache } from '../common/short-cache';
import { TemporalGateway, workflowRef } from '../temporal/temporal.gateway';
import { rethrowAsApiError } from '../temporal/temporal-errors';
import { TunnelsService } from '../tunnels/tunnels.service';
import type { CreateHostDto } from './dto/create-host.dto';
import type { ProvideCredentialsDto } from './dto/credentials.dto';
import type { ChangeAcceptedDto, ChangeRecordDto, HostAcceptedDto, HostDetailsDto, HostListDto } from './dto/host-responses.dto';
import type { ListHostsQueryDto } from './dto/list-hosts.query';
import { toOnboardHostInput, toSshCredential } from './onboard-input.mapper';
import { HOST_WORKFLOW_TYPE, hostEntityStart } from '../../../lib/host-start';

export const ONBOARDING_WORKFLOW_TYPE = 'onboardHost';
export { HOST_WORKFLOW_TYPE };

/** Host phases in which the onboarding child (`onboard/<id>`) has the details and answers credentials and approvals. */
const ONBOARDING_STAGE = new Set<string>(['onboarding', 'probing', 'creating-cloudroot', 'installing-agent', 'starting-tunnel', 'verifying', 'needs-credentials', 'needs-host-key-approval']);


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

  /**
   * Starts (or joins) the host entity `host/<hostId>`, whose first stage is the onboarding `onboard/<hostId>`: the
   * same host posted twice is one host. A host still onboarding under an older version (a lone `onboard/<id>`) is
   * joined as it is.
   */
  async create(dto: CreateHostDto): Promise<HostAcceptedDto> {
    const { client, config } = this.temporal;
    const input = toOnboardHostInput(dto, { sealer: config.keys.sealer, defaultInfluxUrl: config.influx.url });
    const legacy = await this.carryPins(input);
    if (legacy) return { id: input.hostId, workflowId: legacy.workflowId, runId: legacy.runId, statusUrl: statusUrl(input.hostId) };
    const workflowId = workflowIds.host(input.hostId);
    try {
      const handle = await this.temporal.call(() =>
        client.workflow.start(HOST_WORKFLOW_TYPE, { args: [input], ...hostEntityStart(input, config.temporal.onboardingTaskQueue) }),
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
  private async carryPins(input: OnboardHostInput): Promise<{ workflowId: string; runId: string } | undefined> {
    const { client } = this.temporal;
    let previous: StatusFields | undefined;
    // The host entity's last run (its memo keeps the onboarding's status), else a lone onboarding of old.
    for (const workflowId of [workflowIds.host(input.hostId), workflowIds.onboarding(input.hostId)]) {
      let desc: Awaited<ReturnType<WorkflowHandle['describe']>>;
      try {
        desc = await this.temporal.call(() => client.workflow.getHandle(workflowId).describe());
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) continue;
        rethrowAsApiError(err, ErrorCode.HostNotFound);
      }
      const memo = desc.memo?.[STATUS_MEMO_KEY] as (StatusFields & { onboarding?: StatusFields }) | undefined;
      if (desc.status.name === 'RUNNING') {
        // A running host entity is joined (USE_EXISTING); a running lone onboarding of old is answered as it is.
        if (workflowId === workflowIds.onboarding(input.hostId) && !desc.raw.workflowExecutionInfo?.parentExecution) {
          return { workflowId, runId: desc.runId };
        }
        return undefined;
      }
      previous = memo?.onboarding ?? memo;
      if (previous) break;
    }
    const sameHost = previous && previous.address === input.target.address;
    if (!sameHost) return undefined;
    if (!input.target.hostKeySha256 && typeof previous?.hostKeySha256 === 'string') input.target.hostKeySha256 = previous.hostKeySha256;
    if (input.target.via && !input.target.via.hostKeySha256 && typeof previous?.bastionHostKeySha256 === 'string') {
      input.target.via.hostKeySha256 = previous.bastionHostKeySha256;
    }
    return undefined;
  }

  /** Offboards the host: its entity stops watching and undoes every step (an onboarding in flight is cancelled first). */
  async remove(id: string): Promise<{ accepted: true }> {
    const handle = this.temporal.client.workflow.getHandle(workflowIds.host(id));
    try {
      return await this.temporal.update(handle, offboardHostUpdate, [], ErrorCode.HostNotFound);
    } finally {
      this.details.invalidate(id);
    }
  }

  /**
   * Changes the agent of a healthy (or degraded) host: its entity re-runs the role, verifies, and rolls back when
   * verification fails. The update returns once the host has accepted (its validator refuses otherwise: 409).
   */
  async change(id: string, change: HostChange): Promise<ChangeAcceptedDto> {
    return this.hostUpdate(id, () =>
      this.temporal.update(this.temporal.client.workflow.getHandle(workflowIds.host(id)), changeHostUpdate, [change], ErrorCode.HostNotFound),
    );
  }

  /** Gives cloudroot a new key; the host removes the old one only once the new one is proven. */
  async rotateKey(id: string): Promise<ChangeAcceptedDto> {
    return this.hostUpdate(id, () =>
      this.temporal.update(this.temporal.client.workflow.getHandle(workflowIds.host(id)), rotateKeyUpdate, [], ErrorCode.HostNotFound),
    );
  }

  private async hostUpdate(id: string, run: () => Promise<{ accepted: true; changeId: string }>): Promise<ChangeAcceptedDto> {
    try {
      const { accepted, changeId } = await run();
      return { accepted, changeId, statusUrl: statusUrl(id) };
    } finally {
      this.details.invalidate(id); // the next read must see the change it records
    }
  }

  async list(query: ListHostsQueryDto): Promise<HostListDto> {
    // `phase` is one of ONBOARDING_PHASES (validated), so it is safe inside the visibility query.
    const filter = query.phase ? ` AND OnboardingPhase='${query.phase}'` : '';
    // Host entities, and lone onboardings of old; an entity's own onboarding child is not listed twice.
    const page = await this.temporal
      .list(`WorkflowType IN ('${HOST_WORKFLOW_TYPE}', '${ONBOARDING_WORKFLOW_TYPE}') AND ParentWorkflowId IS NULL${filter}`, query.pageSize, query.pageToken)
      .catch((e) => rethrowAsApiError(e, ErrorCode.HostNotFound));
    return {
      items: page.executions.filter((info) => !(info.type === ONBOARDING_WORKFLOW_TYPE && info.parentExecution)).map((info) => {
        const sa = info.typedSearchAttributes;
        return {
          id: sa.get(HostIdKey) ?? info.workflowId.replace(/^(onboard|host)\//, ''),
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
    const host = await this.hostEntity(id);
    if (!host) return this.loadOnboarding(id);
    const { desc, status } = host;
    // A host entity that ended other than offboarded (terminated, failed): say so, never its last live phase.
    if (desc.status.name !== 'RUNNING' && status.phase !== 'offboarded') {
      const closed = await this.closedRunStatus(this.temporal.client.workflow.getHandle(workflowIds.host(id)), desc.status.name);
      return { id, ...workflowRef(desc), source: closed.source, address: status.address, steps: status.onboarding?.steps ?? [], ...hostFields(status), ...closed.status, activities: [] };
    }
    // While it onboards, the onboarding child has the live details (steps, facts, what it waits on).
    if (desc.status.name === 'RUNNING' && ONBOARDING_STAGE.has(status.phase) && status.onboarding?.phase !== 'healthy') {
      // Only this run's own child while it runs: a closed onboarding of an earlier run says nothing about this one,
      // and once this run's child has closed the host's own memo (with the child's result) is the truth.
      const onboarding = (await this.runningChildOf(id, desc.runId)) ? await this.loadOnboarding(id).catch(() => undefined) : undefined;
      // What the onboarding waits on is the onboarding's to say (the host's own waitingOn is a repair's).
      const { waitingOn: _waitingOn, offeredHostKeySha256: _offered, ...fromHost } = hostFields(status);
      if (onboarding) return { ...onboarding, ...workflowRef(desc), ...fromHost, phase: onboarding.phase ?? status.phase };
      if (!onboarding && host.fromVisibility) {
        return { id, ...workflowRef(desc), source: 'visibility', phase: status.phase, address: status.address, steps: [], ...hostFields(status), activities: [] };
      }
    }
    const { steps, phase: _onboardingPhase, address, hostId: _hostId, ...rest }: Partial<OnboardingStatus> = status.onboarding ?? {};
    const [activities, tunnel] = await Promise.all([
      this.temporal.pendingActivities(desc),
      rest.tunnelId ? this.tunnels.brief(rest.tunnelId) : Promise.resolve(undefined),
    ]);
    return {
      id,
      ...workflowRef(desc),
      source: 'memo',
      address: address ?? status.address,
      steps: steps ?? [],
      ...rest,
      ...hostFields(status),
      phase: status.phase,
      ...(tunnel ? { tunnel } : {}),
      activities,
    };
  }

  private async runningChildOf(id: string, hostRunId: string): Promise<boolean> {
    try {
      const child = await this.temporal.call(() => this.temporal.client.workflow.getHandle(workflowIds.onboarding(id)).describe());
      return child.status.name === 'RUNNING' && child.raw.workflowExecutionInfo?.parentExecution?.runId === hostRunId;
    } catch {
      return false;
    }
  }

  /** The host entity's description and memo, or undefined when the host has none (onboarded by an older version). */
  private async hostEntity(id: string): Promise<{ desc: WorkflowExecutionDescription; status: HostStatus; fromVisibility?: boolean } | undefined> {
    let desc: WorkflowExecutionDescription;
    try {
      desc = await this.temporal.call(() => this.temporal.client.workflow.getHandle(workflowIds.host(id)).describe());
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      rethrowAsApiError(err, ErrorCode.HostNotFound);
    }
    const memo = desc.memo?.[STATUS_MEMO_KEY] as HostStatus | undefined;
    if (memo && typeof memo === 'object' && typeof memo.phase === 'string') return { desc, status: memo };
    // Started, but no worker has run it yet: what visibility knows.
    const sa = desc.typedSearchAttributes;
    return {
      desc,
      status: {
        hostId: id,
        address: sa.get(HostAddressKey) ?? '',
        phase: (sa.get(OnboardingPhaseKey) as HostStatus['phase'] | undefined) ?? 'onboarding',
        since: desc.startTime.getTime(),
        repairs: [],
        repairsLastHour: 0,
        flapping: false,
      },
      fromVisibility: true,
    };
  }

  private async loadOnboarding(id: string): Promise<HostDetailsDto> {
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

  /** A host entity whose onboarding child is not running takes no credentials or onboarding approvals: 409, not 404. */
  private async notOnboardingConflict(id: string, err: unknown): Promise<never> {
    if (err instanceof ApiError && err.code === ErrorCode.HostNotFound) {
      const host = await this.hostEntity(id).catch(() => undefined);
      if (host) throw new ApiError(409, ErrorCode.Conflict, `host ${id} is not waiting for credentials or a host-key approval (phase ${host.status.phase})`);
    }
    throw err;
  }

  async provideCredentials(id: string, dto: ProvideCredentialsDto): Promise<{ accepted: true }> {
    const credential = toSshCredential(dto, this.temporal.config.keys.sealer);
    const host = await this.hostEntity(id);
    // A repair whose login was refused waits itself (a bootstrap login recreates cloudroot); onboarding waits in its child.
    if (host && host.status.phase === 'needs-credentials' && host.status.onboarding?.phase === 'healthy') {
      try {
        return await this.temporal.update(
          this.temporal.client.workflow.getHandle(workflowIds.host(id)), provideRepairCredentialsUpdate, [credential, { hop: dto.hop }], ErrorCode.HostNotFound,
        );
      } finally {
        this.details.invalidate(id);
      }
    }
    const handle = this.temporal.client.workflow.getHandle(workflowIds.onboarding(id));
    try {
      return await this.temporal.update(handle, provideCredentialsUpdate, [credential, { hop: dto.hop }], ErrorCode.HostNotFound);
    } catch (err) {
      return this.notOnboardingConflict(id, err);
    } finally {
      this.details.invalidate(id); // the next read must see what the update did
    }
  }

  async approveHostKey(id: string, hostKeySha256: string, hop?: SshHop): Promise<{ accepted: true }> {
    const host = await this.hostEntity(id);
    // A host whose repair met a changed key waits itself; during onboarding the onboarding waits.
    if (host && host.status.phase === 'needs-host-key-approval' && host.status.onboarding?.phase === 'healthy') {
      try {
        return await this.temporal.update(
          this.temporal.client.workflow.getHandle(workflowIds.host(id)), approveRepairHostKeyUpdate, [{ hostKeySha256, ...(hop ? { hop } : {}) }], ErrorCode.HostNotFound,
        );
      } finally {
        this.details.invalidate(id);
      }
    }
    const handle = this.temporal.client.workflow.getHandle(workflowIds.onboarding(id));
    try {
      return await this.temporal.update(handle, approveHostKeyUpdate, [{ hostKeySha256, ...(hop ? { hop } : {}) }], ErrorCode.HostNotFound);
    } catch (err) {
      return this.notOnboardingConflict(id, err);
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
      if (!isStatusLike(result)) return { status: {}, source: 'visibility' };
      // The service login the onboarding hands its host entity stays out of the API (sealed or not).
      const { service: _service, ...status } = result as StatusFields & { service?: unknown };
      return { status, source: 'result' };
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

/**
 * What the host entity adds to an onboarding's details. Field by field, never a whole object of the memo: what the
 * workflow keeps there besides (its service login, sealed or not) stays out of the API.
 */
function hostFields(s: HostStatus) {
  return {
    ...(s.reason ? { reason: s.reason } : {}),
    since: s.since,
    repairs: s.repairs ?? [],
    repairsLastHour: s.repairsLastHour ?? 0,
    flapping: s.flapping ?? false,
    ...(s.lastPointAtMs !== undefined ? { lastPointAtMs: s.lastPointAtMs } : {}),
    ...(s.notCleaned ? { notCleaned: s.notCleaned } : {}),
    ...(s.tunnel ? { tunnelReport: tunnelReport(s.tunnel) } : {}),
    ...(s.agentHealth ? { agentHealth: agentHealth(s.agentHealth) } : {}),
    // A repair waiting on a person (an onboarding's own wait comes with its details).
    ...(s.waitingOn ? { waitingOn: s.waitingOn } : {}),
    ...(s.offeredHostKeySha256 ? { offeredHostKeySha256: s.offeredHostKeySha256 } : {}),
    ...(s.agentConfig ? { agentConfig: { mode: s.agentConfig.mode, interval: s.agentConfig.interval, version: s.agentConfig.version } } : {}),
    ...(s.labels ? { labels: { ...s.labels } } : {}),
    ...(s.changes ? { changes: s.changes.map(changeRecord) } : {}),
    ...(s.fleets && s.fleets.length > 0 ? { fleets: [...s.fleets] } : {}),
    ...(s.onboardingRetries ? { onboardingRetries: s.onboardingRetries } : {}),
  };
}

function tunnelReport(t: NonNullable<HostStatus['tunnel']>) {
  return { tunnelId: t.tunnelId, state: t.state, since: t.since, error: failure(t.error) };
}

function agentHealth(h: NonNullable<HostStatus['agentHealth']>) {
  return { manager: h.manager, running: h.running, state: h.state, lastError: h.lastError, restarted: h.restarted, checkedAtMs: h.checkedAtMs };
}

function changeRecord(r: ChangeRecord): ChangeRecordDto {
  const c = r.change;
  return {
    id: r.id,
    kind: r.kind,
    requestedAtMs: r.requestedAtMs,
    change: c ? { labels: c.labels ? { ...c.labels } : undefined, interval: c.interval, agentMode: c.agentMode, agentVersion: c.agentVersion } : undefined,
    endedAtMs: r.endedAtMs,
    outcome: r.outcome,
    error: r.error,
  };
}

function failure(e: { type: string; message: string } | undefined) {
  return e ? { type: e.type, message: e.message } : undefined;
}

export function statusUrl(hostId: string): string {
  return `/v1/hosts/${encodeURIComponent(hostId)}`;
}

function isStatusLike(v: unknown): v is StatusFields {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as { phase?: unknown }).phase === 'string';
}
