import { createHash, timingSafeEqual } from 'node:crypto';
import type { ApiRole } from '../../../lib/config';

const MAX_TOKEN_LENGTH = 512;

/**
 * Looks a bearer token up in constant time: every configured token is compared (as SHA-256 digests,
 * so lengths never differ) without an early exit, so timing reveals neither which token nor how much matched.
 */
export class TokenMatcher {
  private readonly entries: Array<{ digest: Buffer; role: ApiRole }>;

  constructor(tokens: ReadonlyMap<string, ApiRole>) {
    this.entries = [...tokens].map(([token, role]) => ({ digest: digest(token), role }));
  }

  roleOf(candidate: string): ApiRole | undefined {
    if (candidate.length === 0 || candidate.length > MAX_TOKEN_LENGTH) return undefined;
    const d = digest(candidate);
    let found: ApiRole | undefined;
    for (const entry of this.entries) {
      if (timingSafeEqual(d, entry.digest)) found = entry.role;
    }
    return found;
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
