import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NETNS_PREFIX, RUN_DIR_PREFIX, RUN_ID_PATTERN } from './environment';
import { linkAddresses, releaseLease, staleLeases } from './leases';
import { isAlive, procStartTime, ProcessIdentity, waitFor } from './proc';
import { run } from './run';

export function runOwnerAlive(runRoot: string, runId: string): boolean {
  try {
    const owner = JSON.parse(fs.readFileSync(path.join(runRoot, `${RUN_DIR_PREFIX}${runId}`, 'owner.json'), 'utf8'));
    return isAlive(owner as ProcessIdentity);
  } catch {
    return false;
  }
}

export interface CleanupOptions {
  runRoot?: string;
  /** Also remove fleets whose owning process is still alive (manual cleanup only). */
  includeLive?: boolean;
}

/**
 * Removes leftovers of crashed runs: namespaces named `<prefix><runId>-<host>` (their processes are killed first),
 * run dirs and address leases whose owner process is gone. Fleets of live processes are left alone.
 * Returns the names of the namespaces removed.
 */
export async function cleanupStale(prefix: string = NETNS_PREFIX, opts: CleanupOptions = {}): Promise<string[]> {
  const runRoot = opts.runRoot ?? os.tmpdir();
  const removed: string[] = [];
  const list = await run('ip', ['netns', 'list'], { allowFailure: true, timeoutMs: 10_000 });
  const names = list.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
  for (const ns of names) {
    const m = /^ao-([a-z0-9]{1,12})-[a-z][a-z0-9-]*$/.exec(ns);
    if (!ns.startsWith(prefix) || !m) continue;
    if (!opts.includeLive && runOwnerAlive(runRoot, m[1])) continue;
    const pids = await run('ip', ['netns', 'pids', ns], { allowFailure: true, timeoutMs: 10_000 });
    const ids = pids.stdout
      .split(/\s+/)
      .filter(Boolean)
      .flatMap((p) => {
        const start = procStartTime(Number(p));
        return start ? [{ pid: Number(p), start }] : [];
      });
    for (const id of ids) {
      try {
        process.kill(id.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await waitFor(() => ids.every((id) => !isAlive(id)), 10_000);
    await run('ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 10_000 });
    removed.push(ns);
  }
  let dirs: string[] = [];
  try {
    dirs = fs.readdirSync(runRoot).filter((d) => d.startsWith(RUN_DIR_PREFIX));
  } catch {
    /* no run root */
  }
  for (const d of dirs) {
    const runId = d.slice(RUN_DIR_PREFIX.length);
    if (!RUN_ID_PATTERN.test(runId)) continue;
    if (!`${NETNS_PREFIX}${runId}-`.startsWith(prefix) && !prefix.startsWith(`${NETNS_PREFIX}${runId}-`)) continue;
    if (!opts.includeLive && runOwnerAlive(runRoot, runId)) continue;
    await fs.promises.rm(path.join(runRoot, d), { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
  }
  for (const lease of staleLeases()) {
    if (!`${NETNS_PREFIX}${lease.runId}-`.startsWith(prefix) && !prefix.startsWith(`${NETNS_PREFIX}${lease.runId}-`)) continue;
    if (lease.kind === 'link') {
      await run('ip', ['link', 'del', linkAddresses(lease.index).ifname], { allowFailure: true, timeoutMs: 10_000 });
    }
    releaseLease(lease);
  }
  return removed;
}
