import type { Logger } from '../../lib/logging';
import type { InventoryConfig } from '../../lib/config';
import { sourceProblem, type FleetSource, type InventoryRead } from '../../workflows/fleet/source';
import { whileHeartbeating } from '../heartbeat';
import { allowedUrl, resolveAllowedPath, urlAllowed } from './allowlist';
import { ANSIBLE_FIELD_NAMES, readAnsibleInventory, type AnsibleInventoryOptions } from './ansible-inventory';
import { invalidSource } from './failures';
import { readHostFile } from './file-source';
import { fetchHostDocument, type HttpSourceOptions } from './http-source';
import { normalizeHosts, type FieldNames, type RawHost } from './normalize';

export interface ReadInventoryDeps {
  /** The allowlist; absent or empty = this worker reads no source. */
  inventory?: InventoryConfig;
  log: Logger;
  /** Tests shorten these. */
  ansible?: AnsibleInventoryOptions;
  http?: Omit<HttpSourceOptions, 'allowed'>;
  now?: () => number;
}

/**
 * The activity: one read of a fleet's source, checked host by host. The reconcile workflow calls it every pass and
 * compares `digest` with the last one. Failures: InvalidInput (malformed source, outside the allowlist, an
 * executable inventory) and InventoryUnreadable (retryable only when waiting can help), both named in failures.ts.
 */
export function readInventory(deps: ReadInventoryDeps) {
  return async (source: FleetSource): Promise<InventoryRead> => {
    const problem = sourceProblem(source);
    if (problem) throw invalidSource(`inventory source: ${problem}`);
    const now = deps.now ?? Date.now;
    const readAtMs = now();
    let entries: RawHost[];
    let names: FieldNames = {};
    switch (source.kind) {
      case 'ansible-inventory': {
        const real = await resolveAllowedPath(source.path, deps.inventory);
        entries = await whileHeartbeating(readAnsibleInventory(real, source.group, deps.ansible), { step: 'ansible-inventory' });
        names = ANSIBLE_FIELD_NAMES;
        break;
      }
      case 'file':
        entries = await readHostFile(await resolveAllowedPath(source.path, deps.inventory));
        break;
      case 'http': {
        const url = allowedUrl(source.url, deps.inventory);
        const prefixes = deps.inventory?.urlPrefixes ?? [];
        entries = await whileHeartbeating(fetchHostDocument(url.href, { ...deps.http, allowed: (u) => urlAllowed(u, prefixes) }), { step: 'fetch-inventory' });
        break;
      }
    }
    const read = normalizeHosts(entries, readAtMs, names);
    // Counts only: the entries themselves are the inventory's business.
    deps.log.info('inventory read', { kind: source.kind, hosts: read.hosts.length, ignored: read.ignored.length, digest: read.digest.slice(0, 12) });
    return read;
  };
}
