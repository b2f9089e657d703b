import type { ActivityDeps } from '../deps';
import type { FleetSource, InventoryRead } from '../../workflows/fleet/source';
import { readInventory } from './read-inventory';

/** The inventory activity: reads a fleet's source within the worker's allowlist (none allowed when unset). */
export function createInventoryActivities(deps: ActivityDeps) {
  return {
    readInventory: (source: FleetSource): Promise<InventoryRead> => readInventory(source, deps.inventory ?? { dirs: [], urlPrefixes: [] }),
  };
}
