import { open } from 'node:fs/promises';
import { CORE_SCHEMA, load } from 'js-yaml';
import { inventoryUnreadable } from './failures';
import { safeName, type RawHost } from './normalize';

/** Files and HTTP answers are read up to this size. */
export const MAX_SOURCE_BYTES = 8 * 1024 * 1024;

const FIELDS = new Set(['address', 'port', 'hostId', 'username', 'labels', 'dataPath']);

/** A file of hosts: `{ hosts: [...] }` or a bare list, YAML (core schema: no custom tags) or JSON. */
export async function readHostsFile(file: string): Promise<RawHost[]> {
  const fh = await open(file, 'r').catch(() => undefined);
  if (!fh) throw inventoryUnreadable(`${file}: cannot be opened`);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw inventoryUnreadable(`${file}: not a regular file`);
    if (st.size > MAX_SOURCE_BYTES) throw inventoryUnreadable(`${file}: larger than ${MAX_SOURCE_BYTES} bytes`);
    return parseHostsDocument((await fh.readFile()).toString('utf8'), file);
  } finally {
    await fh.close();
  }
}

/** Parses a hosts document (the file and HTTP formats); entries stay raw for normalizeHosts. */
export function parseHostsDocument(text: string, where: string): RawHost[] {
  let doc: unknown;
  try {
    doc = load(text, { schema: CORE_SCHEMA });
  } catch {
    throw inventoryUnreadable(`${where}: not valid YAML or JSON`);
  }
  const list = Array.isArray(doc) ? doc : doc && typeof doc === 'object' && Array.isArray((doc as { hosts?: unknown }).hosts) ? (doc as { hosts: unknown[] }).hosts : undefined;
  if (!list) throw inventoryUnreadable(`${where}: expected a list of hosts or { hosts: [...] }`);
  return list.map((entry, i): RawHost => {
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) return { name: `#${i}`, address: undefined, problem: 'an entry must be an object with an address' };
    const e = entry as Record<string, unknown>;
    const name = safeName(e.hostId) ?? safeName(e.address) ?? `#${i}`;
    const unknown = Object.keys(e).filter((k) => !FIELDS.has(k));
    return {
      name,
      address: e.address,
      ...(e.port !== undefined ? { port: e.port } : {}),
      ...(e.hostId !== undefined ? { hostId: e.hostId } : {}),
      ...(e.username !== undefined ? { username: e.username } : {}),
      ...(e.labels !== undefined ? { labels: e.labels } : {}),
      ...(e.dataPath !== undefined ? { dataPath: e.dataPath } : {}),
      // Secrets have no place in a source: an entry carrying any unknown field (a password, say) is left out.
      ...(unknown.length > 0 ? { problem: `unknown field(s): ${unknown.filter((k) => safeName(k)).slice(0, 5).join(', ') || '(unprintable)'}` } : {}),
    };
  });
}
