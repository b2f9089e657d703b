import { isIP } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { sealSecret } from '../../lib/sealed-secret';
import { FailureType, type ForwardKeyResult, type ForwardKeyRevokeResult, type SshTarget } from '../../workflows/contracts';
import type { ActivityDeps } from '../deps';
import { dialSsh } from './dialer';
import { invalidInput, onHop, tail, type Endpoint, type Hop } from './errors';
import { shellQuote } from './shell';
import { generateEd25519 } from './keys';

/**
 * The tunnel keeper holds its forward for weeks, so it gets a key that can do nothing else: an ed25519 key in the
 * login's authorized_keys with `restrict,port-forwarding,permitlisten="ADDR:PORT",command="false"` — no shell, no
 * command, no pty, no agent or X11 forwarding, and a remote forward on exactly one address and port. On the host
 * the login is cloudroot (whose own key has sudo: the keeper never holds that one); on a proxy it is the bastion
 * login, whose operator credential the keeper then never holds either.
 */

/** Marks our lines in authorized_keys; the cloudroot script keeps lines with it when it rewrites the file. */
export const FORWARD_KEY_TAG_PREFIX = 'agent-onboarding-forward:';
const TAG_ID = /^[A-Za-z0-9._-]{1,80}$/;
const PUBLIC_KEY = /^ssh-ed25519 [A-Za-z0-9+/]+={0,2}$/;

export interface RevokeForwardKeyInput {
  tunnelId: string;
  /** The login whose authorized_keys holds the tunnel's line, with its own credential and pinned host key. */
  target: SshTarget;
  /** Which hop `target` is for the host: failures are reported on it. */
  hop?: Hop;
}

export interface AuthorizeForwardKeyInput {
  tunnelId: string;
  /** The login the key is for, with its pinned host key (cloudroot on the host, or the bastion login). */
  target: SshTarget;
  /** What the forward listens on, on that server. */
  listen: { address: string; port: number };
  /** Which hop `target` is for the onboarding: failures are reported on it. */
  hop?: Hop;
}

/** `ADDR:PORT` as OpenSSH's permitlisten wants it (IPv6 in brackets). */
export function permitListenValue(address: string, port: number): string {
  if (!isIP(address)) throw new Error(`the forward must listen on an IP address, got "${address.slice(0, 64)}"`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error('invalid forward port');
  return `${isIP(address) === 6 ? `[${address}]` : address}:${port}`;
}

/** The authorized_keys line for a forward-only key. */
export function forwardKeyLine(publicKey: string, permitListen: string, tunnelId: string): string {
  if (!PUBLIC_KEY.test(publicKey)) throw new Error('invalid public key');
  if (!TAG_ID.test(tunnelId)) throw new Error('invalid tunnel id');
  if (!/^(\[[0-9a-fA-F:.]+\]|[0-9.]+):[0-9]{1,5}$/.test(permitListen)) throw new Error('invalid permitlisten value');
  return `restrict,port-forwarding,permitlisten="${permitListen}",command="false" ${publicKey} ${FORWARD_KEY_TAG_PREFIX}${tunnelId}`;
}

/**
 * POSIX sh, run as the login itself (no sudo needed) and sent on stdin, that edits `~/.ssh/authorized_keys`:
 * this tunnel's lines are those whose last field is exactly its tag. With `line` the script replaces them with it
 * (authorize); without, it takes them out (revoke) and leaves the file untouched when there are none. Every other
 * line stays as it was; the file is written atomically; symlinked files are refused (someone else manages them).
 * Prints `forward-key-ok removed=<n>`: how many lines of this tunnel were there before.
 */
function authorizedKeysScript(tunnelId: string, line?: string): string {
  if (!TAG_ID.test(tunnelId)) throw new Error('invalid tunnel id');
  const rewrite = `T=$(mktemp "$HOME/.ssh/.authorized_keys.XXXXXX")
trap 'rm -f "$T"' EXIT
if [ -f "$AK" ]; then awk -v t="$TAG" '$NF != t' "$AK" > "$T"; fi
${line === undefined ? '' : `printf '%s\\n' "$LINE" >> "$T"\n`}chmod 0600 "$T"
mv -f "$T" "$AK"
trap - EXIT
`;
  return `set -eu
TAG=${shellQuote(FORWARD_KEY_TAG_PREFIX + tunnelId)}
${line === undefined ? '' : `LINE=${shellQuote(line)}\n`}fail() { echo "forward-key: $1" >&2; exit 20; }
[ -n "\${HOME:-}" ] && [ -d "$HOME" ] || fail 'the login has no home directory'
umask 077
[ ! -L "$HOME/.ssh" ] || fail "$HOME/.ssh is a symlink"
AK="$HOME/.ssh/authorized_keys"
[ ! -L "$AK" ] || fail "$AK is a symlink"
N=0
if [ -f "$AK" ]; then N=$(awk -v t="$TAG" '$NF == t { n++ } END { print n + 0 }' "$AK"); fi
${line === undefined ? `if [ "$N" -gt 0 ]; then\n${rewrite}fi\n` : `mkdir -p "$HOME/.ssh"\n${rewrite}`}echo "forward-key-ok removed=$N"
`;
}

/** Installs `line` as this tunnel's only line (see `authorizedKeysScript`). */
export function forwardKeyScript(line: string, tunnelId: string): string {
  return authorizedKeysScript(tunnelId, line);
}

/** Removes this tunnel's line, if there is one (see `authorizedKeysScript`). */
export function revokeForwardKeyScript(tunnelId: string): string {
  return authorizedKeysScript(tunnelId);
}

/** How many lines of the tunnel the script took out, or undefined when it did not finish. */
export function parseForwardKeyOutput(stdout: string): number | undefined {
  const m = /^forward-key-ok removed=(\d+)$/m.exec(stdout);
  return m ? Number(m[1]) : undefined;
}

function forwardKeyFailed(e: Endpoint, reason: string, nonRetryable: boolean, action = 'authorizing'): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.TunnelFailed,
    message: `${action} the forward key on ${e.hop === 'via' ? 'jump host ' : ''}${e.address}:${e.port} failed: ${reason}`,
    nonRetryable,
    details: [{ address: e.address, port: e.port, hop: e.hop ?? 'target' }],
  });
}

/** Installs (or replaces) the tunnel's forward-only key, then proves the server accepts it. Idempotent. */
export function authorizeForwardKey(deps: ActivityDeps) {
  return async function authorizeForwardKey(input: AuthorizeForwardKeyInput): Promise<ForwardKeyResult> {
    const hop = input.hop ?? 'target';
    const { target } = input;
    if (!TAG_ID.test(input.tunnelId ?? '')) throw invalidInput('invalid tunnel id');
    if (!target?.hostKeySha256) throw invalidInput(`no pinned host key for ${target?.address}: probe it first`);
    let permitListen: string;
    try {
      permitListen = permitListenValue(input.listen?.address, input.listen?.port);
    } catch (err) {
      throw invalidInput((err as Error).message);
    }
    const e: Endpoint = { address: target.address, port: target.port, hop };
    const keys = generateEd25519();
    const publicKey = keys.public.trim().split(/\s+/).slice(0, 2).join(' ');
    const line = forwardKeyLine(publicKey, permitListen, input.tunnelId);
    const privateKey = sealSecret(deps.keyring, keys.private);
    const username = target.credential.username;

    try {
      const session = await dialSsh(target, { keyring: deps.keyring, log: deps.log });
      try {
        const res = await session.exec('sh -s', { stdin: forwardKeyScript(line, input.tunnelId), timeoutMs: 30_000 });
        if (res.code !== 0 || !res.stdout.includes('forward-key-ok')) {
          throw forwardKeyFailed(e, `the script failed (exit ${res.code}): ${tail(res.stderr)}`, res.code === 20);
        }
      } finally {
        await session.close();
      }
      // Proof: the server takes the new key (sshd may read keys from elsewhere than ~/.ssh/authorized_keys).
      try {
        const proof = await dialSsh(target, { keyring: deps.keyring, log: deps.log, credentialOverride: { username, privateKey } });
        await proof.close();
      } catch (err) {
        if (err instanceof ApplicationFailure && err.type === FailureType.AuthFailed) {
          throw forwardKeyFailed(e, `the server does not accept the new key for ${username} (AuthorizedKeysFile elsewhere?)`, true);
        }
        throw err;
      }
    } catch (err) {
      throw onHop(err, hop);
    }
    deps.log.info('forward key authorized', { tunnelId: input.tunnelId, address: target.address, username, permitListen });
    return { username, publicKey, privateKey, permitListen };
  };
}

/**
 * Takes this tunnel's forward-only key out of the login's authorized_keys (a proxy's or bastion's login, with its
 * own credential), leaving every other line. Idempotent: no line, or no file, is `{ removed: false }`.
 */
export function revokeForwardKey(deps: ActivityDeps) {
  return async function revokeForwardKey(input: RevokeForwardKeyInput): Promise<ForwardKeyRevokeResult> {
    const hop = input.hop ?? 'target';
    const { target } = input;
    if (!TAG_ID.test(input.tunnelId ?? '')) throw invalidInput('invalid tunnel id');
    if (!target?.hostKeySha256) throw invalidInput(`no pinned host key for ${target?.address}: offboarding never trusts a key on first use`);
    const e: Endpoint = { address: target.address, port: target.port, hop };
    let removed: number | undefined;
    try {
      const session = await dialSsh(target, { keyring: deps.keyring, log: deps.log });
      try {
        const res = await session.exec('sh -s', { stdin: revokeForwardKeyScript(input.tunnelId), timeoutMs: 30_000 });
        removed = res.code === 0 ? parseForwardKeyOutput(res.stdout) : undefined;
        if (removed === undefined) {
          throw forwardKeyFailed(e, `the script failed (exit ${res.code}): ${tail(res.stderr)}`, res.code === 20, 'revoking');
        }
      } finally {
        await session.close();
      }
    } catch (err) {
      throw onHop(err, hop);
    }
    deps.log.info(removed > 0 ? 'forward key revoked' : 'forward key was not there', {
      tunnelId: input.tunnelId, address: target.address, username: target.credential.username,
    });
    return { removed: removed > 0 };
  };
}
