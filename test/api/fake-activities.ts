import { ApplicationFailure, Context } from '@temporalio/activity';
import { connectedStats } from '../support/fake-tunnel';

export interface FakeActivities {
  holdReverseForward(tunnelId: string): Promise<void>;
}

/** Fails attempt 1 like a stale remote listener would, then heartbeats stats until cancelled. */
export const fakeActivities: FakeActivities = {
  async holdReverseForward(tunnelId: string): Promise<void> {
    const ctx = Context.current();
    if (ctx.info.attempt === 1) throw ApplicationFailure.retryable(`remote port forwarding failed for ${tunnelId}`, 'TunnelFailed');
    ctx.heartbeat(connectedStats(4242, ctx.info.attempt)); // the real activity's heartbeat shape
    await ctx.cancelled;
  },
};
