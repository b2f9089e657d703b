import { realpath } from 'node:fs/promises';
import path from 'node:path';
import type { InventoryConfig } from '../../lib/config';
import { sourcePathProblem } from '../../workflows/fleet/source';
import { invalidSource, inventoryUnreadable } from './failures';

/**
 * What a worker may read: files below AO_INVENTORY_DIRS, URLs below AO_INVENTORY_URLS. A fleet's source is
 * operator input that ends up read by the worker's user, so without this any operator could make a worker read
 * (and report parts of) any file it can open, or call any URL it can reach.
 */

function inside(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

/**
 * The real path of `p` when it is inside an allowed directory, symlinks resolved on both sides (so neither
 * `/allowed/../etc/passwd` nor a symlink in /allowed that points out gets through); else InvalidInput.
 * A path inside that does not exist is InventoryUnreadable (it may appear by the next pass).
 */
export async function resolveAllowedPath(p: string, config: InventoryConfig | undefined): Promise<string> {
  const dirs = config?.dirs ?? [];
  if (dirs.length === 0) throw invalidSource('this worker reads no inventory files (AO_INVENTORY_DIRS is empty)');
  const lexical = path.resolve(p);
  const realDirs = (await Promise.all(dirs.map((d) => realpath(d).catch(() => null)))).filter((d): d is string => d !== null);
  if (!dirs.some((d) => inside(d, lexical)) && !realDirs.some((d) => inside(d, lexical))) {
    throw invalidSource(`inventory path ${p} is outside the allowed directories (AO_INVENTORY_DIRS)`);
  }
  let real: string;
  try {
    real = await realpath(lexical);
  } catch (e) {
    throw inventoryUnreadable(`inventory path ${p} cannot be resolved (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!realDirs.some((d) => inside(d, real))) throw invalidSource(`inventory path ${p} leads outside the allowed directories (AO_INVENTORY_DIRS)`);
  // The resolved path is what Ansible gets: it must be as inert as the one the operator gave.
  if (sourcePathProblem(real)) throw invalidSource(`inventory path ${p} resolves to a path that is not accepted`);
  return real;
}

/**
 * Whether `url` is below one of the prefixes: same origin (scheme, host, port: not a string prefix, which
 * `https://inv.example.com.evil.net` would pass) and a path below the prefix's path at a `/` boundary.
 */
export function urlAllowed(url: URL, prefixes: readonly string[]): boolean {
  if (url.username || url.password) return false;
  if (/%2f|%5c|%2e/i.test(url.pathname)) return false;
  return prefixes.some((prefix) => {
    const p = new URL(prefix);
    if (p.origin !== url.origin) return false;
    if (p.pathname.endsWith('/')) return url.pathname.startsWith(p.pathname);
    return url.pathname === p.pathname || url.pathname.startsWith(`${p.pathname}/`);
  });
}

/** The parsed URL when allowed; else InvalidInput. */
export function allowedUrl(url: string, config: InventoryConfig | undefined): URL {
  const prefixes = config?.urlPrefixes ?? [];
  if (prefixes.length === 0) throw invalidSource('this worker reads no inventory URLs (AO_INVENTORY_URLS is empty)');
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw invalidSource('inventory url is not a URL');
  }
  if (!urlAllowed(u, prefixes)) throw invalidSource(`inventory url ${u.origin}${u.pathname} is outside the allowed URL prefixes (AO_INVENTORY_URLS)`);
  return u;
}
