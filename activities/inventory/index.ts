import type { ActivityDeps } from '../deps';
import { readInventory, type ReadInventoryDeps } from './read-inventory';

export { readInventory } from './read-inventory';
export type { ReadInventoryDeps } from './read-inventory';
export { normalizeHosts, digestOf, canonicalAddress, MAX_INVENTORY_ENTRIES, MAX_IGNORED_LISTED } from './normalize';
export type { RawHost } from './normalize';
export { resolveAllowedPath, allowedUrl, urlAllowed } from './allowlist';
export { hostsFromAnsibleList, listAnsibleInventory, ANSIBLE_VARS } from './ansible-inventory';
export type { FleetSource, InventoryHost, InventoryRead } from '../../workflows/fleet/source';

/** The inventory activities, registered by name on the worker: `readInventory(source)`. */
export function createInventoryActivities(deps: Pick<ActivityDeps, 'inventory' | 'log'> & Partial<ReadInventoryDeps>) {
  return {
    readInventory: readInventory(deps),
  };
}
