import type { Client, WorkflowExecutionDescription, WorkflowExecutionInfo, WorkflowHandle } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { QueryDefinition, UpdateDefinition } from '@temporalio/common';
import { executionInfoFromRaw } from '@temporalio/client/lib/helpers';
import { ApplicationFailure } from '@temporalio/common';
import { decodeArrayFromPayloads, decodeOptionalFailureToOptionalError } from '@temporalio/common/lib/internal-non-workflow';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import type { ApiConfig } from '../../../lib/config';
import { ApiError, validationFailed } from '../common/api-error';
import { ErrorCode } from '../common/error-codes';
import { PageTokenSigner } from './page-token';
import { rethrowAsApiError } from './temporal-errors';

export interface TemporalTimeouts {
  /** Plain RPCs (start, describe, list). */
  rpcMs: number;
  /** Queries need a worker to answer; without one they would wait forever. */
  queryMs: number;
  /** Updates wait for a worker to accept and run the handler. */
  updateMs: number;
}

export const DEFAULT_TEMPORAL_TIMEOUTS: TemporalTimeouts = { rpcMs: 10_000, queryMs: 5_000, updateMs: 30_000 };

export interface ActivityView {
  activityId: string;
  activityType: string;
  state: string;
  attempt: number;
  maximumAttempts: number;
  lastStartedAt?: string;
  lastHeartbeatAt?: string;
  nextAttemptAt?: string;
  heartbeatDetails?: unknown;
  lastFailure?: { type?: string; message: string };
}

export interface ExecutionPage {
  executions: WorkflowExecutionInfo[];
  nextPageToken: string | null;
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

/** The API's only door to Temporal: every call gets a deadline, and raw protos are decoded in one place. */
export class TemporalGateway {
  constructor(
    readonly client: Client,
    readonly config: ApiConfig,
    readonly timeouts: TemporalTimeouts,
  ) {
    this.pageTokens = new PageTokenSigner(config.keys.codec);
  }

  private readonly pageTokens: PageTokenSigner;

  call<R>(fn: () => Promise<R>, ms = this.timeouts.rpcMs): Promise<R> {
    return this.client.withDeadline(Date.now() + ms, fn);
  }

  /** Visibility listing with the server's real page token (signed, base64url on the wire). */
  async list(query: string, pageSize: number, pageToken?: string): Promise<ExecutionPage> {
    const { namespace } = this.config.temporal;
    let nextPageToken: Buffer | undefined;
    if (pageToken) {
      nextPageToken = this.pageTokens.verify(query, pageToken);
      if (!nextPageToken) {
        throw validationFailed([{ field: 'pageToken', constraints: { isPageToken: 'pageToken must be a nextPageToken of this listing' } }]);
      }
    }
    const resp = await this.call(() => this.client.workflowService.listWorkflowExecutions({ namespace, query, pageSize, nextPageToken }));
    const converter = this.client.options.loadedDataConverter;
    const executions = await Promise.all(
      // Lists need search attributes only. Memos are left out: decoding them costs a decryption per row, and one
      // row written under a retired key must not fail the whole page.
      (resp.executions ?? []).map(
        (raw) => executionInfoFromRaw(withoutMemo(raw), converter, raw, namespace) as Promise<WorkflowExecutionInfo>,
      ),
    );
    const token = resp.nextPageToken && resp.nextPageToken.length > 0 ? this.pageTokens.sign(query, resp.nextPageToken) : null;
    return { executions, nextPageToken: token };
  }

  /** Live activity state from describe: attempt, heartbeat details and last failure (decoded with our codec). */
  async pendingActivities(desc: WorkflowExecutionDescription): Promise<ActivityView[]> {
    const converter = this.client.options.loadedDataConverter;
    const states = temporal.api.enums.v1.PendingActivityState;
    return Promise.all(
      (desc.raw.pendingActivities ?? []).map(async (pa) => {
        let heartbeatDetails: unknown;
        try {
          const details = await decodeArrayFromPayloads(converter, pa.heartbeatDetails?.payloads);
          heartbeatDetails = details.length <= 1 ? details[0] : details;
        } catch {
          heartbeatDetails = undefined; // undecodable (e.g. a retired key): show the rest
        }
        let lastFailure: ActivityView['lastFailure'];
        try {
          const err = await decodeOptionalFailureToOptionalError(converter, pa.lastFailure);
          if (err) lastFailure = { type: err instanceof ApplicationFailure ? (err.type ?? undefined) : err.name, message: err.message };
        } catch {
          lastFailure = { message: 'undecodable failure' };
        }
        const state = pa.state != null ? states[pa.state] : undefined;
        return {
          activityId: pa.activityId ?? '',
          activityType: pa.activityType?.name ?? '',
          state: (state ?? 'UNSPECIFIED').replace(/^PENDING_ACTIVITY_STATE_/, '').toLowerCase(),
          attempt: pa.attempt ?? 0,
          maximumAttempts: pa.maximumAttempts ?? 0,
          lastStartedAt: iso(optionalTsToMs(pa.lastStartedTime)),
          lastHeartbeatAt: iso(optionalTsToMs(pa.lastHeartbeatTime)),
          nextAttemptAt: iso(optionalTsToMs(pa.nextAttemptScheduleTime)),
          heartbeatDetails,
          lastFailure,
        };
      }),
    );
  }

  async describe(handle: WorkflowHandle, notFound: ErrorCode): Promise<WorkflowExecutionDescription> {
    try {
      return await this.call(() => handle.describe());
    } catch (err) {
      rethrowAsApiError(err, notFound);
    }
  }

  /**
   * The workflow's own view, or undefined when no worker answered within the query deadline (or the
   * workflow does not answer this query); other failures become API errors.
   */
  async queryIfAnswered<Ret>(handle: WorkflowHandle, def: QueryDefinition<Ret, []>, notFound: ErrorCode): Promise<Ret | undefined> {
    try {
      return await this.call(() => handle.query(def), this.timeouts.queryMs);
    } catch (err) {
      // Only "no such workflow" is an answer; any other failure to query (deadline, no worker polling yet,
      // rejected) means there is no live answer, and the caller falls back to what describe knows.
      if (err instanceof WorkflowNotFoundError) rethrowAsApiError(err, notFound);
      return undefined;
    }
  }

  /**
   * Runs an update and maps its outcomes: a validator's rejection is a 409, and so is a workflow that is
   * no longer running (the server answers "not found" for an update to a closed execution).
   */
  async update<Ret, Args extends unknown[]>(
    handle: WorkflowHandle,
    def: UpdateDefinition<Ret, Args>,
    args: Args,
    notFound: ErrorCode,
  ): Promise<Ret> {
    try {
      // The overloads split on "has arguments"; this helper serves both kinds.
      const anyDef = def as unknown as UpdateDefinition<Ret, [unknown]>;
      return await this.call(() => handle.executeUpdate(anyDef, { args: args as unknown as [unknown] }), this.timeouts.updateMs);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        const desc = await this.describe(handle, notFound);
        throw new ApiError(409, ErrorCode.Conflict, `the workflow is not running (${desc.status.name})`);
      }
      rethrowAsApiError(err, notFound);
    }
  }
}

export function workflowRef(info: Pick<WorkflowExecutionInfo, 'workflowId' | 'runId' | 'status' | 'startTime' | 'closeTime'>) {
  return {
    workflowId: info.workflowId,
    runId: info.runId,
    workflowStatus: info.status.name,
    startedAt: info.startTime.toISOString(),
    ...(info.closeTime ? { closedAt: info.closeTime.toISOString() } : {}),
  };
}

/** The row as the server sent it, memo hidden (protobuf defaults live on the prototype: no spreading). */
function withoutMemo<T extends object>(raw: T): T {
  const row = Object.create(raw) as T & { memo?: unknown };
  row.memo = undefined;
  return row;
}
