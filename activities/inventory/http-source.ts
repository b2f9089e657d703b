import { inventoryUnreadable } from './failures';
import { MAX_SOURCE_BYTES, parseHostsDocument } from './file-source';
import type { RawHost } from './normalize';

const TIMEOUT_MS = 30_000;

/** GET a URL returning the hosts document as JSON; no redirects (they could lead out of the allowlist). */
export async function readHostsUrl(url: string, timeoutMs = TIMEOUT_MS): Promise<RawHost[]> {
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } });
  } catch (err) {
    const why = (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : 'could not connect (or it redirected)';
    throw inventoryUnreadable(`${url}: ${why}`, { retryable: true });
  }
  if (res.status >= 500 || res.status === 429) throw inventoryUnreadable(`${url}: HTTP ${res.status}`, { retryable: true });
  if (res.status !== 200) throw inventoryUnreadable(`${url}: HTTP ${res.status}`);
  if (!/^application\/([\w.+-]*\+)?json\b/i.test(res.headers.get('content-type') ?? '')) throw inventoryUnreadable(`${url}: the answer is not JSON (content-type)`);
  const declared = Number(res.headers.get('content-length') ?? 0);
  if (declared > MAX_SOURCE_BYTES) throw inventoryUnreadable(`${url}: larger than ${MAX_SOURCE_BYTES} bytes`);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body?.getReader();
  while (reader) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_SOURCE_BYTES) {
      await reader.cancel();
      throw inventoryUnreadable(`${url}: larger than ${MAX_SOURCE_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return parseHostsDocument(Buffer.concat(chunks).toString('utf8'), url);
}
