import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import type { CodecKeySource } from '../../../lib/keyring';

/**
 * Visibility page tokens, signed and bound to their query. Temporal answers a forged token with a retryable
 * UNKNOWN error (so the client would retry until its deadline and we could not tell it from an outage);
 * a signature lets us reject it as a 400 without asking Temporal.
 */
export class PageTokenSigner {
  private readonly key: Buffer;

  constructor(keys: CodecKeySource) {
    // Derived from the newest payload-codec key (the API holds no other symmetric key), domain-separated from it.
    // Tokens are short-lived, so a rotation may void the ones in flight.
    this.key = Buffer.from(hkdfSync('sha256', keys.codecKeys().key(), Buffer.alloc(0), 'agent-onboarding/page-token', 32));
  }

  sign(query: string, serverToken: Uint8Array): string {
    return `${Buffer.from(serverToken).toString('base64url')}.${this.mac(query, serverToken).toString('base64url')}`;
  }

  /** The server's token, or undefined when the token was not issued by us for this query. */
  verify(query: string, token: string): Buffer | undefined {
    const [body, mac, extra] = token.split('.');
    if (!body || !mac || extra !== undefined) return undefined;
    const serverToken = Buffer.from(body, 'base64url');
    const given = Buffer.from(mac, 'base64url');
    const expected = this.mac(query, serverToken);
    return given.length === expected.length && timingSafeEqual(given, expected) ? serverToken : undefined;
  }

  private mac(query: string, serverToken: Uint8Array): Buffer {
    return createHmac('sha256', this.key).update(query).update('\0').update(serverToken).digest().subarray(0, 16);
  }
}
