import { realpath } from 'node:fs/promises';
import path from 'node:path';
import type { InventoryConfig } from '../../lib/config';
import { sourceProblem, type FleetSource, type InventoryRead } from '../../workflows/fleet/source';
import { readAnsibleInventory } from './ansible-inventory';
import { invalidSource } from './failures';
import { readHostsFile } from './file-source';
import { readHostsUrl } from './http-source';
import { normalizeHosts, type RawHost } from './normalize';

/** `file` when it is inside one of `dirs` after every symlink is resolved (`/allowed/../etc` or a link out is not). */
export async function allowedPath(file: string, dirs: readonly string[]): Promise<string> {
  const real = await realpath(file).catch(() => undefined);
  if (!real) throw invalidSource(`${file}: not found`);
  for (const d of dirs) {
    const root = await realpath(d).catch(() => undefined);
    if (root && (real === root || real.startsWith(root.endsWith(path.sep) ? root : root + path.sep))) return real;
  }
  throw invalidSource(`${file} is not inside a directory the workers may read (AO_INVENTORY_DIRS)`);
}

export function allowedUrl(url: string, prefixes: readonly string[]): void {
  if (!prefixes.some((p) => url.startsWith(p))) throw invalidSource(`${url} does not start with a URL the workers may read (AO_INVENTORY_URLS)`);
}

/** Reads a fleet's source: checked against the worker's allowlist, every host checked (bad ones `ignored`). */
export async function readInventory(source: FleetSource, config: InventoryConfig): Promise<InventoryRead> {
  const problem = sourceProblem(source);
  if (problem) throw invalidSource(`the source is unusable: ${problem}`);
  let raw: RawHost[];
  if (source.kind === 'http') {
    allowedUrl(source.url, config.urlPrefixes);
    raw = await readHostsUrl(source.url);
  } else {
    const file = await allowedPath(source.path, config.dirs);
    raw = source.kind === 'file' ? await readHostsFile(file) : await readAnsibleInventory(file, source.group);
  }
  return normalizeHosts(raw, Date.now());
}
