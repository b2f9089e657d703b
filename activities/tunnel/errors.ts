import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../workflows/contracts';

/**
 * `TunnelFailed` is retryable by default: the keeper's retry policy (forever, capped backoff) is the
 * reconnect loop. Only callers that give up on purpose (ensureTunnel at its deadline) make it final.
 */
export function tunnelFailed(
  tunnelId: string,
  reason: string,
  opts: { nonRetryable?: boolean } = {},
): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.TunnelFailed,
    message: `tunnel ${tunnelId}: ${reason}`,
    nonRetryable: opts.nonRetryable ?? false,
    details: [{ tunnelId }],
  });
}
