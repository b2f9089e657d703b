import { ApplicationFailure } from '@temporalio/common';
import { deriveHostId } from '../../lib/host-address';
import { FailureType, workflowIds } from '../../workflows/contracts';
import { fleetInventoryUpdate, type FleetInventoryReport, type FleetSourceRead } from '../../workflows/fleet/messages';
import type { FleetPlan } from '../../workflows/fleet/plan';
import type { FleetSource, InventoryRead } from '../../workflows/fleet/source';
import type { ActivityDeps } from '../deps';

export interface ReadFleetSourceInput {
  source: FleetSource;
  /** The port hosts without one use (the fleet's default): host ids are derived from address and port. */
  defaultPort: number;
}

export interface ApplyInventoryInput extends FleetInventoryReport {
  fleetId: string;
}

/**
 * A reconcile pass's I/O: read the source (through the inventory reader and its allowlist) with every host's id
 * filled in as the API derives it, then hand the read to the fleet (an update: the fleet computes and applies the
 * plan, or holds it for approval, and answers with it).
 */
export function createFleetSourceActivities(deps: ActivityDeps, readInventory: (source: FleetSource) => Promise<InventoryRead>) {
  return {
    async readFleetSource(input: ReadFleetSourceInput): Promise<FleetSourceRead> {
      const read = await readInventory(input.source);
      return { ...read, hosts: read.hosts.map((h) => ({ ...h, hostId: h.hostId ?? deriveHostId(h.address, h.port ?? input.defaultPort) })) };
    },

    async applyInventory(input: ApplyInventoryInput): Promise<FleetPlan | { error: string }> {
      const client = deps.temporal?.client;
      if (!client) throw ApplicationFailure.create({ type: FailureType.InvalidInput, message: 'applyInventory needs a Temporal client', nonRetryable: true });
      const { fleetId, ...report } = input;
      return client.workflow.getHandle(workflowIds.fleet(fleetId)).executeUpdate(fleetInventoryUpdate, { args: [report] });
    },
  };
}
