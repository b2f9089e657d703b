import { Injectable } from '@nestjs/common';
import { TunnelIdKey } from '../../../workflows/search-attributes';
import { workflowIds, type TunnelStatus } from '../../../workflows/contracts';
import { restartTunnelUpdate, stopTunnelUpdate, tunnelStatusQuery } from '../../../workflows/messages';
import { ErrorCode } from '../common/error-codes';
import { TemporalGateway, workflowRef, type ActivityView } from '../temporal/temporal.gateway';
import { rethrowAsApiError } from '../temporal/temporal-errors';
import { observeDescription, tunnelStatusFrom } from '../../../activities/tunnel/describe';
import type { TunnelDetailsDto, TunnelListDto } from './dto/tunnel-responses.dto';
import type { TunnelBriefDto } from '../hosts/dto/host-responses.dto';
import type { PageQueryDto } from '../common/page-query.dto';

export const TUNNEL_WORKFLOW_TYPE = 'tunnelKeeper';

const idFromWorkflowId = (workflowId: string) => workflowId.replace(/^tunnel\//, '');

@Injectable()
export class TunnelsService {
  constructor(private readonly temporal: TemporalGateway) {}

  async list(query: PageQueryDto): Promise<TunnelListDto> {
    const page = await this.temporal
      .list(`WorkflowType='${TUNNEL_WORKFLOW_TYPE}'`, query.pageSize, query.pageToken)
      .catch((e) => rethrowAsApiError(e, ErrorCode.TunnelNotFound));
    return {
      items: page.executions.map((info) => ({
        id: info.typedSearchAttributes.get(TunnelIdKey) ?? idFromWorkflowId(info.workflowId),
        ...workflowRef(info),
      })),
      nextPageToken: page.nextPageToken,
    };
  }

  async get(id: string): Promise<TunnelDetailsDto> {
    const handle = this.temporal.client.workflow.getHandle(workflowIds.tunnel(id));
    const desc = await this.temporal.describe(handle, ErrorCode.TunnelNotFound);
    const activities = await this.temporal.pendingActivities(desc);
    const ref = workflowRef(desc);
    if (desc.status.name !== 'RUNNING') {
      return { id, ...ref, source: 'visibility', state: 'stopped', activities };
    }
    const live = await this.queryStatus(id);
    // The forward-holding activity: its attempt and last failure say why a tunnel is not connected.
    const holder: ActivityView | undefined = activities[0];
    if (live) {
      return {
        id,
        ...ref,
        source: 'query',
        state: live.state,
        stats: live.stats as Record<string, unknown> | undefined,
        attempt: live.attempt ?? holder?.attempt,
        lastFailure: live.lastFailure ?? holder?.lastFailure?.message,
        activities,
      };
    }
    return {
      id,
      ...ref,
      source: 'visibility',
      state: 'unknown',
      stats: isObject(holder?.heartbeatDetails) ? holder.heartbeatDetails : undefined,
      attempt: holder?.attempt,
      lastFailure: holder?.lastFailure?.message,
      activities,
    };
  }

  /** For a host's status: the tunnel's state, or "unknown" when no worker answers in time. */
  /** The tunnel line of a host's status: from describe alone (last heartbeat), never waiting on a worker. */
  async brief(id: string): Promise<TunnelBriefDto> {
    try {
      const client = this.temporal.client;
      const description = await this.temporal.describe(client.workflow.getHandle(workflowIds.tunnel(id)), ErrorCode.TunnelNotFound);
      const seen = tunnelStatusFrom(await observeDescription(client.options.loadedDataConverter, id, description));
      return { id, state: seen.state, stats: seen.stats as Record<string, unknown> | undefined };
    } catch {
      return { id, state: 'unknown' };
    }
  }

  async restart(id: string): Promise<{ restarted: true }> {
    const handle = this.temporal.client.workflow.getHandle(workflowIds.tunnel(id));
    return this.temporal.update(handle, restartTunnelUpdate, [], ErrorCode.TunnelNotFound);
  }

  async stop(id: string): Promise<{ stopped: true }> {
    const handle = this.temporal.client.workflow.getHandle(workflowIds.tunnel(id));
    return this.temporal.update(handle, stopTunnelUpdate, [], ErrorCode.TunnelNotFound);
  }

  private queryStatus(id: string): Promise<TunnelStatus | undefined> {
    const handle = this.temporal.client.workflow.getHandle(workflowIds.tunnel(id));
    return this.temporal.queryIfAnswered(handle, tunnelStatusQuery, ErrorCode.TunnelNotFound);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
