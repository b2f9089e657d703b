import { ApplicationFailure, Context } from '@temporalio/activity';

export interface FakeActivities {
  holdFakeForward(tunnelId: string): Promise<void>;
}

/** Fails attempt 1 like a stale remote listener would, then heartbeats stats until cancelled. */
export const fakeActivities: FakeActivities = {
  async holdFakeForward(tunnelId: string): Promise<void> {
    const ctx = Context.current();
    if (ctx.info.attempt === 1) throw ApplicationFailure.retryable(`remote port forwarding failed for ${tunnelId}`, 'TunnelFailed');
    ctx.heartbeat({ connected: true, boundPort: 4242 });
    await ctx.cancelled;
  },
};
