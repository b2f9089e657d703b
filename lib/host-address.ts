import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { HOST_ID_PATTERN } from '../workflows/input-rules';

// Host ids from addresses, one place for the API (a host posted without an id) and inventory sources (a host listed
// without one): the same host gets the same id whichever way it comes.

/**
 * A stable id for `address:port`, so posting the same host twice is one onboarding:
 * `10.213.1.5` port 22 → `10.213.1.5-22`; names too long or too odd for the id alphabet get a hash suffix.
 */
export function deriveHostId(address: string, port: number): string {
  const canonical = isIP(address) === 6 ? canonicalIpv6(address) : address.toLowerCase();
  const readable = canonical.replace(/[^a-z0-9.]+/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  const id = `${readable}-${port}`;
  // IPv6 addresses always get the hash: `fd00::5` must not become the id of a host named `fd00-5`.
  if (readable && HOST_ID_PATTERN.test(id) && !address.includes(':') && !id.startsWith(RESERVED_HOST_ID_PREFIX)) return id;
  const hash = createHash('sha256').update(`${canonical}:${port}`).digest('hex').slice(0, 12);
  const prefix = readable.replace(/^proxy-/, 'h-proxy-').slice(0, 63 - hash.length - 1).replace(/[^a-z0-9]+$/, '');
  return prefix ? `${prefix}-${hash}` : `h-${hash}`;
}

/** Tunnel keepers of proxies are `tunnel/proxy-…`: host ids stay out of that namespace. */
export const RESERVED_HOST_ID_PREFIX = 'proxy-';

/** `fd00:0::5` and `FD00::5` are one address: the compressed lower-case form URL parsing yields. */
export function canonicalIpv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.replace(/^\[|\]$/g, '');
}

