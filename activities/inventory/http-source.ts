import { ApplicationFailure } from '@temporalio/common';
import { inventoryUnreadable } from './failures';
import { MAX_SOURCE_BYTES, parseHostDocument } from './file-source';
import { hostsFromDocument } from './host-document';
import type { RawHost } from './normalize';

export interface HttpSourceOptions {
  /** The whole read, body included. */
  timeoutMs?: number;
  maxBytes?: number;
  /** Same-origin redirects followed at most this many times (each target must pass `allowed` too). */
  maxRedirects?: number;
  /** The allowlist, asked again for every redirect target. */
  allowed: (url: URL) => boolean;
}

export const HTTP_SOURCE_DEFAULTS = { timeoutMs: 15_000, maxBytes: MAX_SOURCE_BYTES, maxRedirects: 3 } as const;

/** Origin and path only: a query string may carry a token. */
function shown(u: URL): string {
  return `${u.origin}${u.pathname}`;
}

function isJson(contentType: string | null): boolean {
  const mime = (contentType ?? '').split(';')[0].trim().toLowerCase();
  return mime === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(mime);
}

/** Reads at most maxBytes of the body; more fails the read (and stops the transfer). */
async function boundedText(res: Response, maxBytes: number, what: string): Promise<string> {
  const length = Number(res.headers.get('content-length') ?? NaN);
  if (length > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw inventoryUnreadable(`${what} is larger than ${maxBytes} bytes`);
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw inventoryUnreadable(`${what} is larger than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * GETs a host document (JSON, the file format). Redirects are followed by hand and only within the origin and the
 * allowlist (fetch would follow them anywhere). 5xx, 429, timeouts and unreachable servers are retryable; every
 * other refusal is final for this pass.
 */
export async function fetchHostDocument(url: string, opts: HttpSourceOptions): Promise<RawHost[]> {
  const timeoutMs = opts.timeoutMs ?? HTTP_SOURCE_DEFAULTS.timeoutMs;
  const maxBytes = opts.maxBytes ?? HTTP_SOURCE_DEFAULTS.maxBytes;
  const maxRedirects = opts.maxRedirects ?? HTTP_SOURCE_DEFAULTS.maxRedirects;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let current = new URL(url);
  const what = () => `inventory URL ${shown(current)}`;
  try {
    for (let redirects = 0; ; redirects++) {
      let res: Response;
      try {
        res = await fetch(current, { redirect: 'manual', signal: controller.signal, headers: { accept: 'application/json' } });
      } catch (e) {
        if (controller.signal.aborted) throw inventoryUnreadable(`${what()} did not answer within ${timeoutMs} ms`, { retryable: true });
        const code = (e as { cause?: { code?: string } }).cause?.code;
        throw inventoryUnreadable(`${what()} cannot be reached (${code ?? 'network error'})`, { retryable: true });
      }
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel().catch(() => undefined);
        const location = res.headers.get('location');
        const next = location ? new URL(location, current) : undefined;
        if (!next || next.origin !== current.origin) throw inventoryUnreadable(`${what()} redirects to another origin`);
        if (!opts.allowed(next)) throw inventoryUnreadable(`${what()} redirects outside the allowed URL prefixes`);
        if (redirects >= maxRedirects) throw inventoryUnreadable(`${what()} redirects more than ${maxRedirects} times`);
        current = next;
        continue;
      }
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        const retryable = res.status >= 500 || res.status === 429;
        throw inventoryUnreadable(`${what()} answered HTTP ${res.status}`, { retryable });
      }
      if (!isJson(res.headers.get('content-type'))) {
        await res.body?.cancel().catch(() => undefined);
        throw inventoryUnreadable(`${what()} did not answer with JSON (content-type must be application/json)`);
      }
      let text: string;
      try {
        text = await boundedText(res, maxBytes, what());
      } catch (e) {
        if (controller.signal.aborted) throw inventoryUnreadable(`${what()} did not answer within ${timeoutMs} ms`, { retryable: true });
        if (e instanceof ApplicationFailure) throw e;
        throw inventoryUnreadable(`${what()} broke off the answer`, { retryable: true });
      }
      return hostsFromDocument(parseHostDocument(text, 'json', what()), what());
    }
  } finally {
    clearTimeout(timer);
  }
}
