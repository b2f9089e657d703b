import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { CORE_SCHEMA, load } from 'js-yaml';
import { inventoryUnreadable } from './failures';
import { hostsFromDocument } from './host-document';
import type { RawHost } from './normalize';

export const MAX_SOURCE_BYTES = 8 * 1024 * 1024;

/**
 * JSON for `.json`, YAML otherwise, with the core schema: plain data only (no `!!js/*` or custom tags), duplicate
 * keys refused, one document.
 */
export function parseHostDocument(text: string, format: 'json' | 'yaml', what: string): unknown {
  try {
    return format === 'json' ? JSON.parse(text) : load(text, { schema: CORE_SCHEMA });
  } catch (e) {
    // The parser's message quotes the offending line, which may be anything: only its position goes out.
    const at = /\((\d+):(\d+)\)|position (\d+)|line (\d+)/.exec((e as Error).message);
    throw inventoryUnreadable(`${what} is not valid ${format.toUpperCase()}${at ? ` (near ${at[0].replace(/[()]/g, '')})` : ''}`);
  }
}

/**
 * Reads a host file that the allowlist already resolved (`realPath`). Opened without following a final symlink and
 * without blocking (a FIFO put there instead must not hang the activity), then checked on the open handle: a
 * regular file of bounded size. Nothing is read through a path twice.
 */
export async function readHostFile(realPath: string, maxBytes = MAX_SOURCE_BYTES): Promise<RawHost[]> {
  const what = `inventory file ${realPath}`;
  let handle;
  try {
    handle = await open(realPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    throw inventoryUnreadable(`${what} cannot be opened (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw inventoryUnreadable(`${what} is not a regular file`);
    if (st.size > maxBytes) throw inventoryUnreadable(`${what} is larger than ${maxBytes} bytes`);
    // At most maxBytes + 1, whatever the file grew to since the stat.
    const buf = Buffer.alloc(Math.min(st.size, maxBytes) + 1);
    let length = 0;
    while (length < buf.length) {
      const { bytesRead } = await handle.read(buf, length, buf.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > maxBytes) throw inventoryUnreadable(`${what} is larger than ${maxBytes} bytes`);
    const text = buf.subarray(0, length).toString('utf8');
    const format = path.extname(realPath).toLowerCase() === '.json' ? 'json' : 'yaml';
    return hostsFromDocument(parseHostDocument(text, format, what), what);
  } finally {
    await handle.close();
  }
}
