import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../workflows/contracts';

/**
 * Named failures of the SSH activities. Messages and details never carry secrets: they name the host,
 * the hop and what went wrong, and whatever came from the remote side passes through `scrub` first.
 */

export type Hop = 'target' | 'via';

export interface Endpoint {
  address: string;
  port: number;
  hop?: Hop;
}

function where(e: Endpoint): string {
  const label = e.hop === 'via' ? 'jump host ' : '';
  return `${label}${e.address}:${e.port}`;
}

/**
 * `seen` carries the host keys the handshake showed before the login was refused, so the caller can pin them
 * right away (trust on first use happens once, not again at the next try).
 */
export function authFailed(e: Endpoint, reason: string, seen: { hostKeySha256?: string; viaHostKeySha256?: string } = {}): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.AuthFailed,
    message: `authentication failed on ${where(e)}: ${reason}`,
    nonRetryable: true,
    details: [{ address: e.address, port: e.port, hop: e.hop ?? 'target', ...seen }],
  });
}

/** The same failure, said of another hop (a proxy dialed on its own is the onboarding's bastion, not its host). */
export function onHop(err: unknown, hop: Hop): unknown {
  if (!(err instanceof ApplicationFailure) || !Array.isArray(err.details) || typeof err.details[0] !== 'object' || err.details[0] === null) return err;
  const d = err.details[0] as Endpoint & Record<string, unknown>;
  if (d.hop === hop) return err;
  const message = hop === 'via' && !err.message.includes('jump host') ? err.message.replace(` on ${d.address}:`, ` on jump host ${d.address}:`) : err.message;
  return ApplicationFailure.create({ type: err.type ?? undefined, message, nonRetryable: err.nonRetryable ?? undefined, details: [{ ...d, hop }] });
}

export function hostKeyMismatch(e: Endpoint, expected: string, offered: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.HostKeyMismatch,
    message: `host key of ${where(e)} is ${offered}, expected ${expected}`,
    nonRetryable: true,
    details: [{ expected, offered, address: e.address, port: e.port, hop: e.hop ?? 'target' }],
  });
}

/** Retryable on purpose: the workflow's retry policy (probe budget) decides how long an unreachable host is tried. */
export function hostUnreachable(e: Endpoint, reason: string, code?: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.HostUnreachable,
    message: `cannot reach ${where(e)}: ${reason}`,
    nonRetryable: false,
    details: [{ address: e.address, port: e.port, hop: e.hop ?? 'target', code: code ?? null }],
  });
}

export function unsupportedOs(e: Endpoint, reason: string, facts: unknown): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.UnsupportedOS,
    message: `unsupported host ${where(e)}: ${reason}`,
    nonRetryable: true,
    details: [{ address: e.address, port: e.port, facts }],
  });
}

export function cloudrootFailed(e: Endpoint, reason: string, opts: { nonRetryable?: boolean } = {}): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.CloudrootFailed,
    message: `creating the service user on ${where(e)} failed: ${reason}`,
    nonRetryable: opts.nonRetryable ?? false,
    details: [{ address: e.address, port: e.port }],
  });
}

export function cloudrootRemovalFailed(e: Endpoint, reason: string, opts: { nonRetryable?: boolean } = {}): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.CloudrootFailed,
    message: `removing the service user on ${where(e)} failed: ${reason}`,
    nonRetryable: opts.nonRetryable ?? false,
    details: [{ address: e.address, port: e.port }],
  });
}

/** Adding or retiring the service user's login keys (key rotation). The old key works until a retire succeeded. */
export function cloudrootKeyFailed(e: Endpoint, reason: string, opts: { nonRetryable?: boolean } = {}): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.CloudrootFailed,
    message: `rotating the service user's key on ${where(e)} failed: ${reason}`,
    nonRetryable: opts.nonRetryable ?? false,
    details: [{ address: e.address, port: e.port }],
  });
}

/** Checking (or starting) Telegraf over the service login failed for a reason other than SSH itself. */
export function agentCheckFailed(e: Endpoint, reason: string, opts: { nonRetryable?: boolean } = {}): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.AgentCheckFailed,
    message: `checking the agent on ${where(e)} failed: ${reason}`,
    nonRetryable: opts.nonRetryable ?? false,
    details: [{ address: e.address, port: e.port }],
  });
}

/**
 * The server turned this very login away: AuthFailed on the final hop, after a handshake (the details carry the
 * host key it showed). A refused jump-host login, or a key we could not even parse, is not that.
 */
export function isLoginRefused(err: unknown): boolean {
  if (!(err instanceof ApplicationFailure) || err.type !== FailureType.AuthFailed) return false;
  const d = Array.isArray(err.details) ? (err.details[0] as Record<string, unknown> | undefined) : undefined;
  return typeof d === 'object' && d !== null && d.hop === 'target' && typeof d.hostKeySha256 === 'string';
}

export function invalidInput(reason: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.InvalidInput, message: reason, nonRetryable: true });
}

/** Replaces every occurrence of the given secrets in remote output before it is reported anywhere. */
export function scrub(text: string, secrets: ReadonlyArray<string | undefined>): string {
  let out = text;
  for (const s of secrets) {
    if (s && s.length > 0) out = out.split(s).join('[redacted]');
  }
  return out;
}

/** The last few hundred characters of remote stderr, scrubbed: enough to name the failing step, bounded for payloads. */
export function tail(text: string, secrets: ReadonlyArray<string | undefined> = [], max = 400): string {
  const t = scrub(text, secrets).trim();
  return t.length > max ? '…' + t.slice(t.length - max) : t;
}

const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN',
  'ECONNABORTED', 'EADDRNOTAVAIL',
]);

/**
 * Maps an error from ssh2's connect/handshake/auth to a named failure. `hostKey` carries the outcome of our
 * host verifier: ssh2 only reports "Host denied (verification failed)", the fingerprints are ours.
 */
export function mapSshError(
  err: unknown,
  e: Endpoint,
  hostKey?: { expected: string; offered: string },
  seenHostKeySha256?: string,
): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  if (hostKey) return hostKeyMismatch(e, hostKey.expected, hostKey.offered);
  const error = err as (Error & { level?: string; code?: string }) | undefined;
  const message = error?.message ?? String(err);
  const level = error?.level;
  const code = typeof error?.code === 'string' ? error.code : undefined;
  if (level === 'client-authentication' || /All configured authentication methods failed/i.test(message)) {
    return authFailed(e, 'the server rejected the credentials', seenHostKeySha256 ? { hostKeySha256: seenHostKeySha256 } : {});
  }
  if (level === 'client-timeout' || /Timed out while waiting for handshake/i.test(message)) {
    return hostUnreachable(e, 'timed out waiting for the SSH handshake', 'ETIMEDOUT');
  }
  if (code && UNREACHABLE_CODES.has(code)) return hostUnreachable(e, code, code);
  if (level === 'client-socket' || level === 'client-dns') return hostUnreachable(e, message, code);
  // Protocol-level surprises (no common algorithm, peer closed early): not the credential's fault and possibly
  // transient, so retryable and bounded by the workflow's retry policy.
  return hostUnreachable(e, message, code);
}

/** ssh2 key parsing errors, rephrased; ssh2's own messages name no key material but we keep them short and stable. */
export function describeKeyError(err: Error): string {
  const m = err.message;
  if (/no passphrase given/i.test(m)) return 'the private key is encrypted and no passphrase was given';
  if (/bad passphrase|integrity check failed|bad decrypt|decrypt/i.test(m)) {
    return 'the private key could not be decrypted with the given passphrase';
  }
  return 'the private key could not be parsed (expected an OpenSSH or PEM private key)';
}
