import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../workflows/contracts';

/**
 * The named failures of `readInventory`. Messages name the source (its path or URL, which the operator gave) and
 * what went wrong, never the inventory's content: an inventory may hold passwords next to the hosts.
 */

/** The source is malformed or outside this worker's allowlist: no retry helps, the fleet's source must change. */
export function invalidSource(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.InvalidInput, message, nonRetryable: true });
}

/**
 * The source could not be read or parsed. Final by default (the next reconcile pass reads again anyway);
 * `retryable` for what passes by itself: HTTP 5xx, 429, timeouts, refused connections.
 */
export function inventoryUnreadable(message: string, opts: { retryable?: boolean } = {}): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.InventoryUnreadable, message, nonRetryable: !opts.retryable });
}
