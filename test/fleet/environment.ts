import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FleetError } from './errors';
import { run } from './run';

/** Network namespaces are `ao-<runId>-<host>`; run dirs `<tmp>/ao-fleet-<runId>`. */
export const NETNS_PREFIX = 'ao-';
export const RUN_DIR_PREFIX = 'ao-fleet-';
export const RUN_ID_PATTERN = /^[a-z0-9]{1,12}$/;
/** The only addresses the fleet uses. */
export const FLEET_RANGE = '10.213.0.0/16';

export function cacheDir(): string {
  return (
    process.env.AO_CACHE_DIR ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'agent-onboarding')
  );
}

export function defaultBaseDir(): string {
  return path.join(cacheDir(), 'fleet', 'base');
}

/** Why the fleet cannot run here (for test skips), or undefined when it can. */
export function fleetUnsupportedReason(baseDir = defaultBaseDir()): string | undefined {
  if (process.platform !== 'linux') return `the test fleet needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'the test fleet needs root (network, mount and pid namespaces)';
  if (!fs.existsSync(path.join(baseDir, 'usr/sbin/sshd'))) {
    return `no fleet base image at ${baseDir}: run deploy/dev/fleet-base`;
  }
  for (const tool of ['ip', 'unshare', 'nsenter', 'tc']) {
    const found = (process.env.PATH ?? '')
      .split(':')
      .some((d) => d && fs.existsSync(path.join(d, tool)));
    if (!found) return `the test fleet needs \`${tool}\` on PATH`;
  }
  return undefined;
}

/**
 * Without this, the root namespace would send packets for fleet addresses it has no link to (a private host, a
 * destroyed host) out of its default route, to whatever answers there. An `unreachable` route for the whole range
 * fails them locally; the per-host /30 routes are more specific and win. Shared by all fleets, so it stays.
 */
export async function ensureFleetRangeStaysLocal(): Promise<void> {
  const r = await run('ip', ['route', 'show', 'exact', FLEET_RANGE], { timeoutMs: 10_000 });
  if (r.stdout.includes('unreachable')) return;
  const add = await run('ip', ['route', 'add', 'unreachable', FLEET_RANGE], { allowFailure: true, timeoutMs: 10_000 });
  if (add.exitCode !== 0 && !/File exists/.test(add.stderr)) {
    throw new FleetError(`cannot add the unreachable route for ${FLEET_RANGE}: ${add.stderr.trim()}`);
  }
}

