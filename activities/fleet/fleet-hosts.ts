import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { HOST_WORKFLOW_TYPE, hostEntityStart } from '../../lib/host-start';
import { FailureType, workflowIds, type OnboardHostInput } from '../../workflows/contracts';
import { fleetSubscribeSignal, fleetUnsubscribeSignal, type FleetCorrections } from '../../workflows/fleet/messages';
import { changeHostUpdate, offboardHostUpdate, provideRepairCredentialsUpdate, retryOnboardingUpdate } from '../../workflows/host/messages';
import { provideCredentialsUpdate } from '../../workflows/messages';
import type { ActivityDeps } from '../deps';

/**
 * The fleet's hands on its hosts. Each call is idempotent: signal-with-start joins a running host entity (a host in
 * two fleets is one host) and starts one that is not running; a retry the host refuses is reported, not thrown.
 */

export interface StartFleetHostsInput {
  fleetId: string;
  inputs: OnboardHostInput[];
}
export interface FleetHostsResult {
  /** Hosts that could not be handed what was asked, with the reason (their own validator's words). */
  refused: { hostId: string; why: string }[];
}
export interface RetryFleetHostsInput {
  fleetId: string;
  hosts: { hostId: string; phase: 'failed' | 'needs-credentials'; input: OnboardHostInput }[];
  corrections?: FleetCorrections;
}
export interface ReleaseFleetHostsInput {
  fleetId: string;
  hostIds: string[];
  /** Also offboard each host (its entity undoes every step). */
  offboard: boolean;
}

export interface RelabelFleetHostsInput {
  fleetId: string;
  changes: { hostId: string; labels: Record<string, string> }[];
}

/** Calls in flight at once toward Temporal. */
const CONCURRENCY = 16;

async function eachLimited<T>(items: T[], run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const item = items[next++];
      await run(item);
      heartbeat({ done: next, of: items.length });
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, items.length) }, lane));
}

function heartbeat(details: unknown): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    // called outside an activity (tests)
  }
}

function why(err: unknown): string {
  if (err instanceof WorkflowUpdateFailedError) return err.cause?.message ?? err.message;
  if (err instanceof WorkflowNotFoundError) return 'the host entity is not running';
  return err instanceof Error ? err.message : String(err);
}

/** An update the host refused (validator) is the host's answer; anything else (Temporal away) is retried. */
function refusedByHost(err: unknown): boolean {
  return err instanceof WorkflowUpdateFailedError || err instanceof WorkflowNotFoundError;
}

export function createFleetActivities(deps: ActivityDeps) {
  const temporal = (): { client: Client; taskQueue: string } => {
    const t = deps.temporal;
    if (!t?.client || !t.hostTaskQueue) {
      throw ApplicationFailure.create({ type: FailureType.InvalidInput, message: 'fleet activities need a Temporal client and the host task queue', nonRetryable: true });
    }
    return { client: t.client, taskQueue: t.hostTaskQueue };
  };

  return {
    /** Starts or joins each host entity and subscribes the fleet to its phases (the host reports where it is at once). */
    async startFleetHosts(input: StartFleetHostsInput): Promise<FleetHostsResult> {
      const { client, taskQueue } = temporal();
      const refused: FleetHostsResult['refused'] = [];
      await eachLimited(input.inputs, async (hostInput) => {
        const { workflowIdConflictPolicy: _policy, ...start } = hostEntityStart(hostInput, taskQueue);
        await client.workflow.signalWithStart(HOST_WORKFLOW_TYPE, {
          ...start,
          args: [hostInput],
          signal: fleetSubscribeSignal,
          signalArgs: [{ fleetId: input.fleetId }],
        });
      });
      return { refused };
    },

    /** A failed host onboards again (from its failed step, with the corrected input); a waiting one gets the new login. */
    async retryFleetHosts(input: RetryFleetHostsInput): Promise<FleetHostsResult> {
      const { client } = temporal();
      const refused: FleetHostsResult['refused'] = [];
      await eachLimited(input.hosts, async (h) => {
        const host = client.workflow.getHandle(workflowIds.host(h.hostId));
        try {
          if (h.phase === 'failed') {
            await host.executeUpdate(retryOnboardingUpdate, { args: [h.input] });
            return;
          }
          const credential = input.corrections?.credential;
          if (!credential) {
            refused.push({ hostId: h.hostId, why: 'waits for credentials: give corrections.credential' });
            return;
          }
          // While onboarding the onboarding child waits; a repair whose login was refused waits in the host itself.
          try {
            await client.workflow.getHandle(workflowIds.onboarding(h.hostId)).executeUpdate(provideCredentialsUpdate, { args: [credential, { hop: 'target' }] });
          } catch (err) {
            if (!refusedByHost(err)) throw err;
            await host.executeUpdate(provideRepairCredentialsUpdate, { args: [credential, { hop: 'target' }] });
          }
        } catch (err) {
          if (!refusedByHost(err)) throw err;
          refused.push({ hostId: h.hostId, why: why(err) });
        }
      });
      if (refused.length > 0) deps.log.info('fleet retry: hosts refused', { fleetId: input.fleetId, refused: refused.length });
      return { refused };
    },

    /** Labels a source changed: each host takes them as a change (role re-run, verified, rolled back if need be). */
    async relabelFleetHosts(input: RelabelFleetHostsInput): Promise<FleetHostsResult> {
      const { client } = temporal();
      const refused: FleetHostsResult['refused'] = [];
      await eachLimited(input.changes, async (c) => {
        try {
          await client.workflow.getHandle(workflowIds.host(c.hostId)).executeUpdate(changeHostUpdate, { args: [{ labels: c.labels }] });
        } catch (err) {
          if (!refusedByHost(err)) throw err;
          refused.push({ hostId: c.hostId, why: why(err) });
        }
      });
      return { refused };
    },

    /** The fleet lets its hosts go: they stop reporting to it, and with `offboard` each is offboarded. */
    async releaseFleetHosts(input: ReleaseFleetHostsInput): Promise<FleetHostsResult> {
      const { client } = temporal();
      const refused: FleetHostsResult['refused'] = [];
      await eachLimited(input.hostIds, async (hostId) => {
        const host = client.workflow.getHandle(workflowIds.host(hostId));
        try {
          await host.signal(fleetUnsubscribeSignal, { fleetId: input.fleetId });
          if (input.offboard) await host.executeUpdate(offboardHostUpdate, { args: [] });
        } catch (err) {
          if (!refusedByHost(err)) throw err;
          refused.push({ hostId, why: why(err) });
        }
      });
      return { refused };
    },
  };
}
