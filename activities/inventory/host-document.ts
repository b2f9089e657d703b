import { inventoryUnreadable } from './failures';
import { safeName, type RawHost } from './normalize';

/**
 * The file/http format: `{ "hosts": [ … ] }` or a bare array, each entry
 * `{ address, port?, hostId?, username?, labels?, dataPath? }`. Strict like the API (`forbidNonWhitelisted`): an
 * entry with any other field (a typo such as `hostID`, or a `password`, which a source never gives) is left out
 * with the reason, not half-read.
 */

const FIELDS = new Set(['address', 'port', 'hostId', 'username', 'labels', 'dataPath']);

/** The entries of a parsed document; a document of another shape is unreadable as a whole. */
export function hostsFromDocument(doc: unknown, what: string): RawHost[] {
  let list: unknown;
  if (Array.isArray(doc)) list = doc;
  else if (typeof doc === 'object' && doc !== null && Object.keys(doc).length === 1 && 'hosts' in doc) list = (doc as { hosts: unknown }).hosts;
  if (!Array.isArray(list)) throw inventoryUnreadable(`${what} must hold { "hosts": [ … ] } or an array of hosts`);
  return list.map((entry, i): RawHost => {
    const at = `hosts[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return { name: at, address: undefined, problem: 'an entry must be an object' };
    const e = entry as Record<string, unknown>;
    const shown = safeName(e.address);
    const name = shown ? `${at} ${shown}` : at;
    const unknown = Object.keys(e).filter((k) => !FIELDS.has(k));
    if (unknown.length > 0) {
      const names = unknown.length <= 5 && unknown.every((k) => /^[A-Za-z0-9_]{1,32}$/.test(k)) ? unknown.join(', ') : `${unknown.length} fields`;
      return { name, address: e.address, problem: `unknown field(s): ${names} (credentials never come from a source)` };
    }
    return { name, address: e.address, port: e.port, hostId: e.hostId, username: e.username, labels: e.labels, dataPath: e.dataPath };
  });
}
