import { utils } from 'ssh2';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from '../../lib/logging';
import { sealSecret, unsealSecret } from '../../lib/sealed-secret';
import {
  FailureType, type AddCloudrootKeyInput, type AddedCloudrootKey, type RetireCloudrootKeysInput, type SshCredential, type SshTarget,
} from '../../workflows/contracts';
import { FINGERPRINT_PATTERN, HOST_ID_PATTERN } from '../../workflows/input-rules';
import type { ActivityDeps } from '../deps';
import { whileHeartbeating } from '../heartbeat';
import {
  KEYS_CHANGED, KEYS_REFUSED, READ_KEYS_SCRIPT, parseAuthorizedKey, parseReadKeys, retainOnly, sha256Hex, withKeyAdded,
  writeKeysScript, type Retained,
} from './authorized-keys';
import { USERNAME_PATTERN, cloudrootKeyComment, isCloudrootKeyLine } from './cloudroot';
import { dialSsh, fingerprintSha256, normalizeFingerprint, type SshSession } from './dialer';
import { cloudrootKeyFailed, invalidInput, tail, type Endpoint } from './errors';
import { generateEd25519 } from './keys';

/**
 * Key rotation for the service user, in two steps a workflow runs with the new key stored in between:
 *
 * 1. `addCloudrootKey` (logged in with the current key) adds a new key beside it and proves it: a fresh login with
 *    only the new key runs `sudo -n true`. Both keys work afterwards.
 * 2. `retireCloudrootKeys` (logged in with the new key, which must work first) removes every other login key and
 *    keeps the tunnels' forward-only keys, then proves the new key again.
 *
 * A retried add leaves the key of the failed attempt behind (it was never handed out); the retire removes it with
 * the old key. Both edit authorized_keys as the login itself: read, change here, and replace the file atomically
 * only if it is still what was read (a tunnel's key authorized meanwhile makes us read again).
 */

const EDIT_ATTEMPTS = 3;

function endpointOf(target: SshTarget): Endpoint {
  return { address: target.address, port: target.port };
}

/** `target` with the host keys this session checked (the jump host's too): later connections go to the same servers. */
function pinnedAs(target: SshTarget, session: SshSession, credential = target.credential): SshTarget {
  return {
    ...target,
    hostKeySha256: session.hostKeySha256,
    via: target.via ? { ...target.via, hostKeySha256: session.viaHostKeySha256 } : undefined,
    credential,
  };
}

/** The checks both steps make before connecting: a known host, its pinned key, the service login. */
function validateTarget(hostId: unknown, target: SshTarget | undefined): asserts target is SshTarget {
  if (typeof hostId !== 'string' || !HOST_ID_PATTERN.test(hostId)) throw invalidInput(`hostId must match ${HOST_ID_PATTERN}`);
  if (!target || typeof target.address !== 'string') throw invalidInput('a target is required');
  const username = target.credential?.username;
  if (typeof username !== 'string' || !USERNAME_PATTERN.test(username) || username === 'root') {
    throw invalidInput('target.credential.username must be the service user (a valid name, not root)');
  }
  if (!target.credential.privateKey) throw invalidInput(`the ${username} login is key-only: target.credential needs its private key`);
  if (!target.hostKeySha256) throw invalidInput(`no pinned host key for ${target.address}: key rotation never trusts a key on first use`);
}

/** Reads authorized_keys, lets `change` compute the new text (undefined: nothing to do), writes it back if unchanged meanwhile. */
async function editAuthorizedKeys<T>(
  session: SshSession,
  e: Endpoint,
  change: (content: string) => { content?: string; result: T },
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const read = await session.exec('sh -s', { stdin: READ_KEYS_SCRIPT, timeoutMs: 30_000, maxOutputBytes: 1024 * 1024 });
    const file = read.code === 0 ? parseReadKeys(read.stdout) : undefined;
    if (!file) {
      throw cloudrootKeyFailed(e, `reading ~/.ssh/authorized_keys failed (exit ${read.code}): ${tail(read.stderr)}`, { nonRetryable: read.code === KEYS_REFUSED });
    }
    // What we got is what is on disk (not cut short, and text we can write back byte for byte).
    if (sha256Hex(file.content) !== file.sha256) {
      throw cloudrootKeyFailed(e, '~/.ssh/authorized_keys is not UTF-8 text or larger than 1 MiB: edit it by hand', { nonRetryable: true });
    }
    const { content, result } = change(file.content);
    if (content === undefined || content === file.content) return result;
    const write = await session.exec('sh -s', { stdin: writeKeysScript(file.sha256, content), timeoutMs: 30_000 });
    if (write.code === 0 && write.stdout.includes('authorized-keys-ok')) return result;
    if (write.code === KEYS_CHANGED && attempt < EDIT_ATTEMPTS) continue;
    throw cloudrootKeyFailed(e, `writing ~/.ssh/authorized_keys failed (exit ${write.code}): ${tail(write.stderr)}`, { nonRetryable: write.code === KEYS_REFUSED });
  }
}

/** A fresh connection with exactly `target`'s credential that runs `sudo -n true`: the key is a full service login. */
async function proveSudoLogin(deps: ActivityDeps, target: SshTarget, e: Endpoint, what: string): Promise<void> {
  let session: SshSession;
  try {
    session = await dialSsh(target, { keyring: deps.keyring, log: deps.log });
  } catch (err) {
    if (err instanceof ApplicationFailure && err.type === FailureType.AuthFailed) {
      throw cloudrootKeyFailed(e, `the server does not accept ${what} for ${target.credential.username} (AuthorizedKeysFile elsewhere?)`, { nonRetryable: true });
    }
    throw err;
  }
  try {
    await requireSudo(session, e, target.credential.username, what);
  } finally {
    await session.close();
  }
}

async function requireSudo(session: SshSession, e: Endpoint, username: string, what: string): Promise<void> {
  const res = await session.exec('sudo -n true', { timeoutMs: 30_000 });
  if (res.code !== 0) {
    throw cloudrootKeyFailed(e, `"sudo -n true" as ${username} with ${what} failed (exit ${res.code}): ${tail(res.stderr, [], 200)}`, { nonRetryable: true });
  }
}

/** The OpenSSH SHA256 fingerprint of a private key's public half. */
function privateKeySha256(privateKey: string): string | undefined {
  const parsed = utils.parseKey(privateKey);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  return key && !(key instanceof Error) ? fingerprintSha256(key.getPublicSSH()) : undefined;
}

/**
 * Appends `line` over the current login, then proves it with a fresh login with `key` only; takes the line out again
 * when the proof fails.
 */
async function installAndProve(deps: ActivityDeps, target: SshTarget, line: string, key: SshCredential, log: Logger): Promise<void> {
  const e = endpointOf(target);
  const sha256 = parseAuthorizedKey(line)!.sha256;
  const session = await dialSsh(target, { keyring: deps.keyring, log: deps.log });
  try {
    await editAuthorizedKeys(session, e, (content) => ({ content: withKeyAdded(content, line).content, result: undefined }));
    try {
      // The same servers (pins as this session saw them), nothing but the new key.
      await proveSudoLogin(deps, pinnedAs(target, session, key), e, 'the new key');
    } catch (err) {
      // Best effort: a key that is never handed out should not stay authorized.
      await editAuthorizedKeys(session, e, (content) => ({
        content: content.split('\n').filter((l) => parseAuthorizedKey(l)?.sha256 !== sha256).join('\n'),
        result: undefined,
      })).catch((undo: Error) => log.warn('could not take the unproven key out again', { error: undo.message }));
      throw err;
    }
  } finally {
    await session.close();
  }
}

/**
 * Adds a new ed25519 login key for the service user beside the current one (same form and comment as the cloudroot
 * script writes), then proves a login with only the new key and that it can sudo. Returns it sealed. If the proof
 * fails, the new line is taken out again (the current key is untouched either way).
 */
export function addCloudrootKey(deps: ActivityDeps) {
  return async function addCloudrootKey(input: AddCloudrootKeyInput): Promise<AddedCloudrootKey> {
    const { target } = input;
    validateTarget(input.hostId, target);
    const username = target.credential.username;
    const keys = generateEd25519({ comment: cloudrootKeyComment(input.hostId) });
    const line = keys.public.trim();
    if (!isCloudrootKeyLine(line)) throw new Error('generated key has an unexpected form');
    const publicKeySha256 = parseAuthorizedKey(line)!.sha256;
    const privateKey = sealSecret(deps.keyring, keys.private);
    const log = deps.log.child({ hostId: input.hostId, address: target.address, username });
    await whileHeartbeating(installAndProve(deps, target, line, { username, privateKey }, log), { step: 'add-cloudroot-key', hostId: input.hostId });
    log.info('cloudroot key added', { publicKeySha256 });
    return { username, privateKey, publicKeySha256 };
  };
}

/** Proves `target`'s key can sudo, keeps only it (and the forward-only keys), proves it again with a fresh login. */
async function retainAndProve(deps: ActivityDeps, target: SshTarget, keep: string): Promise<Retained> {
  const e = endpointOf(target);
  const session = await dialSsh(target, { keyring: deps.keyring, log: deps.log });
  let outcome: Retained;
  try {
    await requireSudo(session, e, target.credential.username, 'the key to keep');
    outcome = await editAuthorizedKeys(session, e, (content) => {
      const r = retainOnly(content, keep);
      if (r.kept === 0) {
        throw cloudrootKeyFailed(e, 'the key to keep is not in ~/.ssh/authorized_keys (sshd reads keys from elsewhere?): nothing removed', { nonRetryable: true });
      }
      return { content: r.content, result: r };
    });
  } finally {
    await session.close();
  }
  if (outcome.removed > 0) await proveSudoLogin(deps, pinnedAs(target, session), e, 'the kept key');
  return outcome;
}

/**
 * Logs in with the key that stays (`target`'s, which must be `keepPublicKeySha256`) and proves it can sudo before
 * anything changes; then removes every other login key of the service user, keeping the tunnels' forward-only keys,
 * comments and blank lines as they are; then proves a fresh login with the kept key. Idempotent: a retry after
 * success removes 0 and leaves the file untouched. A key that does not log in is the dialer's AuthFailed, and then
 * nothing was removed.
 */
export function retireCloudrootKeys(deps: ActivityDeps) {
  return async function retireCloudrootKeys(input: RetireCloudrootKeysInput): Promise<{ removed: number }> {
    const { target } = input;
    validateTarget(input.hostId, target);
    if (typeof input.keepPublicKeySha256 !== 'string') throw invalidInput('keepPublicKeySha256 is required');
    const keep = normalizeFingerprint(input.keepPublicKeySha256);
    if (!FINGERPRINT_PATTERN.test(keep)) throw invalidInput('keepPublicKeySha256 must be an OpenSSH SHA256 fingerprint');
    let loginSha256: string | undefined;
    try {
      loginSha256 = privateKeySha256(unsealSecret(deps.keyring, target.credential.privateKey!));
    } catch {
      throw invalidInput('the private key could not be unsealed (unknown key id or corrupted secret)');
    }
    // Only the key we prove here may be the one that stays: anything else could lock the service user out.
    if (loginSha256 !== keep) throw invalidInput('target.credential must be the key to keep (its fingerprint is not keepPublicKeySha256)');
    const log = deps.log.child({ hostId: input.hostId, address: target.address, username: target.credential.username });
    const outcome = await whileHeartbeating(retainAndProve(deps, target, keep), { step: 'retire-cloudroot-keys', hostId: input.hostId });
    log.info(outcome.removed > 0 ? 'cloudroot keys retired' : 'no cloudroot key left to retire', { keep, ...outcome });
    return { removed: outcome.removed };
  };
}
