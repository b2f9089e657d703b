import { Context } from '@temporalio/activity';

/** The running activity's context, or undefined when the function is called outside an activity (tests do). */
export function currentActivity(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Heartbeats `details` every `intervalMs` until `work` settles (and once right away): slow steps keep the activity alive. */
export async function whileHeartbeating<T>(work: Promise<T>, details: Record<string, unknown>, intervalMs = 2_000): Promise<T> {
  const ctx = currentActivity();
  if (!ctx) return work;
  const started = Date.now();
  ctx.heartbeat({ ...details, elapsedMs: 0 });
  const beat = setInterval(() => ctx.heartbeat({ ...details, elapsedMs: Date.now() - started }), intervalMs);
  try {
    return await work;
  } finally {
    clearInterval(beat);
  }
}
