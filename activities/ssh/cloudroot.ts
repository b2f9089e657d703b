import { ApplicationFailure } from '@temporalio/common';
import { sealSecret, unsealSecret } from '../../lib/sealed-secret';
import type { CloudrootResult, SshTarget } from '../../workflows/contracts';
import { FailureType } from '../../workflows/contracts';
import type { ActivityDeps } from '../deps';
import { dialSsh, type SshSession } from './dialer';
import { authFailed, cloudrootFailed, invalidInput, tail, type Endpoint } from './errors';
import { FORWARD_KEY_TAG_PREFIX } from './forward-key';
import { shellQuote } from './shell';
import { generateEd25519 } from './keys';

export const USERNAME_PATTERN = /^[a-z_][a-z0-9_-]{0,31}$/;
const PUBLIC_KEY_PATTERN = /^ssh-ed25519 [A-Za-z0-9+/]+={0,2}( [A-Za-z0-9_.:@-]+)?$/;

/** The comment of cloudroot's login keys (`agent-onboarding:<hostId>`): the first key and every rotated one. */
export function cloudrootKeyComment(hostId: string): string {
  return `agent-onboarding:${hostId.replace(/[^A-Za-z0-9_.@-]/g, '_').slice(0, 64)}`;
}

/** A cloudroot login key line as the cloudroot script writes it: the key and its comment, no options. */
export function isCloudrootKeyLine(line: string): boolean {
  return PUBLIC_KEY_PATTERN.test(line);
}

/** First stdin line after the sudo password: proves sudo consumed the password (see `SUDO_GATE`). */
export const BEGIN_MARKER = '__ao_cloudroot_begin__';
/**
 * Runs under `sudo -S`: if sudo did not read the password line (no password was needed after all), that line
 * reaches this `read` instead of the marker and we stop, rather than letting bash execute a password.
 */
export const SUDO_GATE = `IFS= read -r l; [ "$l" = ${BEGIN_MARKER} ] || exit 97; exec bash -s`;
export const GATE_TRIPPED = 97;

/**
 * The remote script (bash, run as root). The user name and public key are validated and single-quoted as
 * data; the script is sent on stdin, so nothing of it is in any process's argv. Idempotent: every run
 * converges to the same user, exactly the newest key (plus the tunnels' forward-only keys), and the same
 * validated sudoers drop-in.
 */
export function cloudrootScript(username: string, publicKey: string): string {
  if (!USERNAME_PATTERN.test(username)) throw new Error('invalid username');
  if (!PUBLIC_KEY_PATTERN.test(publicKey)) throw new Error('invalid public key');
  return `set -euo pipefail
U=${shellQuote(username)}
KEY=${shellQuote(publicKey)}
SUDOERS=/etc/sudoers.d/90-$U
fail() { echo "cloudroot: $2" >&2; exit "$1"; }
command -v useradd >/dev/null 2>&1 || fail 10 'useradd not found'
command -v visudo >/dev/null 2>&1 || fail 11 'visudo not found (is sudo installed?)'
if ! id -u "$U" >/dev/null 2>&1; then
  if getent group "$U" >/dev/null 2>&1; then useradd -m -s /bin/bash -g "$U" "$U"; else useradd -m -s /bin/bash "$U"; fi
fi
# Key-only account: '*' can never match a password, unlike '!' it does not lock out key logins without PAM.
usermod -p '*' -s /bin/bash "$U"
H=$(getent passwd "$U" | cut -d: -f6)
G=$(id -gn "$U")
[ -n "$H" ] && [ "$H" != / ] || fail 12 'the user has no usable home directory'
[ -d "$H" ] || install -d -m 0750 -o "$U" -g "$G" "$H"
[ ! -L "$H/.ssh" ] || fail 13 "$H/.ssh is a symlink"
install -d -m 0700 -o "$U" -g "$G" "$H/.ssh"
KT=$(mktemp "$H/.ssh/.authorized_keys.XXXXXX")
printf '%s\\n' "$KEY" > "$KT"
# Forward-only keys of tunnels (see forward-key.ts) stay until their keeper holds a new one.
if [ -f "$H/.ssh/authorized_keys" ] && [ ! -L "$H/.ssh/authorized_keys" ]; then
  awk -v p=${shellQuote(FORWARD_KEY_TAG_PREFIX)} 'index($NF, p) == 1 && $1 ~ /^restrict,port-forwarding,permitlisten=/' "$H/.ssh/authorized_keys" >> "$KT"
fi
chown "$U:$G" "$KT"
chmod 0600 "$KT"
mv -f "$KT" "$H/.ssh/authorized_keys"
grep -Eq '^[#@]includedir[[:space:]]+/etc/sudoers.d/?[[:space:]]*$' /etc/sudoers || fail 14 '/etc/sudoers does not include /etc/sudoers.d'
# sudo ignores names with a dot in sudoers.d, so the temp file is inert until the validated move.
ST=$(mktemp /etc/sudoers.d/.cloudroot.XXXXXX)
trap 'rm -f "$ST"' EXIT
printf '%s ALL=(ALL) NOPASSWD:ALL\\n' "$U" > "$ST"
chmod 0440 "$ST"
visudo -cf "$ST" >/dev/null || fail 15 'the sudoers drop-in did not validate'
chown root:root "$ST"
mv -f "$ST" "$SUDOERS"
visudo -c >/dev/null || { rm -f "$SUDOERS"; fail 16 'sudo configuration is invalid with the drop-in installed'; }
echo cloudroot-ok
`;
}

type Privilege = { kind: 'root' } | { kind: 'sudo-nopasswd' } | { kind: 'sudo-password' } | { kind: 'no-sudo' };

async function privilegeOf(session: SshSession): Promise<Privilege> {
  const res = await session.exec(
    'id -u; if command -v sudo >/dev/null 2>&1; then echo has-sudo; sudo -n true >/dev/null 2>&1 && echo sudo-nopasswd; fi; true',
    { timeoutMs: 30_000 },
  );
  const lines = res.stdout.split('\n').map((l) => l.trim());
  if (lines[0] === '0') return { kind: 'root' };
  if (lines.includes('sudo-nopasswd')) return { kind: 'sudo-nopasswd' };
  if (lines.includes('has-sudo')) return { kind: 'sudo-password' };
  return { kind: 'no-sudo' };
}

/** Runs the script as root through whatever the bootstrap user has; the password only ever goes to sudo's stdin. */
async function runAsRoot(session: SshSession, target: SshTarget, password: string | undefined, script: string, e: Endpoint) {
  const priv = await privilegeOf(session);
  switch (priv.kind) {
    case 'root':
      return session.exec('bash -s', { stdin: script, timeoutMs: 120_000 });
    case 'sudo-nopasswd':
      return session.exec('sudo -n bash -s', { stdin: script, timeoutMs: 120_000 });
    case 'no-sudo':
      throw authFailed(e, `${target.credential.username} is not root and sudo is not installed`);
    case 'sudo-password': {
      if (password === undefined) throw authFailed(e, `sudo needs a password for ${target.credential.username} and the credential has none`);
      if (/[\r\n]/.test(password)) throw invalidInput('a password containing a line break cannot be given to sudo');
      // -k: ignore a cached sudo timestamp, so sudo reads the password line for certain.
      return session.exec(`sudo -k -S -p '' bash -c ${shellQuote(SUDO_GATE)}`, {
        stdin: `${password}\n${BEGIN_MARKER}\n${script}`,
        timeoutMs: 120_000,
      });
    }
  }
}

/**
 * Creates the key-only `cloudroot` service user with passwordless sudo over the bootstrap session, then proves
 * it with a fresh connection as that user (same pinned host key) running `sudo -n true`.
 */
export function createCloudroot(deps: ActivityDeps) {
  return async function createCloudroot(input: { hostId: string; target: SshTarget; username?: string }): Promise<CloudrootResult> {
    const { target } = input;
    const username = input.username ?? 'cloudroot';
    if (!USERNAME_PATTERN.test(username)) throw invalidInput(`invalid service user name "${username.slice(0, 40)}"`);
    const e: Endpoint = { address: target.address, port: target.port };
    const keys = generateEd25519({ comment: cloudrootKeyComment(input.hostId) });
    const publicKey = keys.public.trim();
    const sealedKey = sealSecret(deps.keyring, keys.private);
    const script = cloudrootScript(username, publicKey);

    const session = await dialSsh(target, { keyring: deps.keyring, log: deps.log });
    const pinned: SshTarget = {
      ...target,
      hostKeySha256: session.hostKeySha256,
      via: target.via ? { ...target.via, hostKeySha256: session.viaHostKeySha256 } : undefined,
    };
    try {
      // Unsealed here, for sudo's stdin only; scrubbed from anything we report.
      const password = target.credential.password ? unsealSecret(deps.keyring, target.credential.password) : undefined;
      const res = await runAsRoot(session, target, password, script, e);
      const stderr = tail(res.stderr, [password]);
      if (res.code === GATE_TRIPPED) throw cloudrootFailed(e, 'sudo did not ask for the password it needed a moment ago');
      if (res.code !== 0 || !res.stdout.includes('cloudroot-ok')) {
        if (/incorrect password|try again|Authentication failure/i.test(res.stderr)) {
          throw authFailed(e, `sudo rejected the password of ${target.credential.username}`);
        }
        if (/not in the sudoers|not allowed to/i.test(res.stderr)) {
          throw authFailed(e, `${target.credential.username} may not use sudo`);
        }
        // Exit codes 10-16 are the script's own checks: fixing them needs a person, not a retry.
        const scripted = typeof res.code === 'number' && res.code >= 10 && res.code <= 16;
        throw cloudrootFailed(e, `setup script failed (exit ${res.code}): ${stderr}`, { nonRetryable: scripted });
      }
    } finally {
      await session.close();
    }

    await proveCloudroot(deps, pinned, username, sealedKey, e);
    deps.log.info('cloudroot ready', { hostId: input.hostId, address: target.address, username });
    return { username, publicKey, privateKey: sealedKey };
  };
}

/** A new connection with only the new key: if this works, nothing later needs the bootstrap credential. */
async function proveCloudroot(deps: ActivityDeps, pinned: SshTarget, username: string, privateKey: CloudrootResult['privateKey'], e: Endpoint) {
  let proof: SshSession;
  try {
    proof = await dialSsh(pinned, { keyring: deps.keyring, log: deps.log, credentialOverride: { username, privateKey } });
  } catch (err) {
    if (err instanceof ApplicationFailure && err.type === FailureType.AuthFailed) {
      throw cloudrootFailed(e, `logging in as ${username} with the new key failed`);
    }
    throw err;
  }
  try {
    const res = await proof.exec('sudo -n true', { timeoutMs: 30_000 });
    if (res.code !== 0) throw cloudrootFailed(e, `"sudo -n true" as ${username} failed (exit ${res.code}): ${tail(res.stderr)}`);
  } finally {
    await proof.close();
  }
}
