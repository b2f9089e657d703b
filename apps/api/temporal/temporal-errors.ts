import {
  isGrpcServiceError,
  QueryNotRegisteredError,
  QueryRejectedError,
  ServiceError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';
import { ApiError } from '../common/api-error';
import { ErrorCode } from '../common/error-codes';

/** gRPC status codes we map (numbers from the gRPC spec; @grpc/grpc-js is not a direct dependency). */
export const GrpcStatus = { INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, FAILED_PRECONDITION: 9, UNAVAILABLE: 14 } as const;

export function grpcCode(err: unknown): number | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (isGrpcServiceError(e)) return e.code;
  }
  return undefined;
}

/** Failures the workflow reported (e.g. an update validator's rejection) carry a message meant for callers. */
function failureMessage(err: Error): string {
  const cause = (err as { cause?: Error }).cause;
  return (cause?.message || err.message || 'rejected').slice(0, 500);
}

/**
 * Maps Temporal client errors to API errors; `notFound` names what the workflow id stands for.
 * Returns undefined for anything that is not a Temporal error.
 */
export function temporalErrorToApiError(err: unknown, notFound: ErrorCode = ErrorCode.NotFound): ApiError | undefined {
  if (err instanceof ApiError) return err;
  if (err instanceof WorkflowNotFoundError) {
    const what = notFound === ErrorCode.HostNotFound ? 'host' : notFound === ErrorCode.TunnelNotFound ? 'tunnel' : 'workflow';
    return new ApiError(404, notFound, `no such ${what}`);
  }
  if (err instanceof WorkflowUpdateFailedError) return new ApiError(409, ErrorCode.Conflict, failureMessage(err));
  if (err instanceof QueryRejectedError) return new ApiError(409, ErrorCode.Conflict, 'the workflow rejected the query');
  if (err instanceof QueryNotRegisteredError) return new ApiError(409, ErrorCode.Conflict, 'the workflow does not answer this query');
  if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) {
    return new ApiError(504, ErrorCode.TemporalTimeout, 'no worker answered in time');
  }
  const code = grpcCode(err);
  if (code === GrpcStatus.UNAVAILABLE) return new ApiError(503, ErrorCode.TemporalUnavailable, 'Temporal is unavailable');
  // Our calls carry deadlines; the SDK retries UNAVAILABLE until the deadline, so an unreachable
  // server surfaces as DEADLINE_EXCEEDED. Slow queries/updates (no worker) are told apart by their callers.
  if (code === GrpcStatus.DEADLINE_EXCEEDED) return new ApiError(503, ErrorCode.TemporalUnavailable, 'Temporal did not answer in time');
  if (code === GrpcStatus.FAILED_PRECONDITION) return new ApiError(409, ErrorCode.Conflict, 'the workflow is not in a state that allows this');
  if (err instanceof ServiceError || code !== undefined) return new ApiError(502, ErrorCode.TemporalError, 'Temporal returned an error');
  // A lazy connection that cannot be established fails before any gRPC call is made.
  if (err instanceof Error && /connect|ECONNREFUSED|transport|Failed to connect/i.test(err.message)) {
    return new ApiError(503, ErrorCode.TemporalUnavailable, 'Temporal is unavailable');
  }
  return undefined;
}

/** `catch (e) { rethrowAsApiError(e, ErrorCode.HostNotFound) }`: Temporal errors become API errors, others pass. */
export function rethrowAsApiError(err: unknown, notFound: ErrorCode): never {
  throw temporalErrorToApiError(err, notFound) ?? err;
}
