import type { CloudrootRemovalResult, SshTarget } from '../../workflows/contracts';
import type { ActivityDeps } from '../deps';
import { USERNAME_PATTERN } from './cloudroot';
import { dialSsh, type ExecResult } from './dialer';
import { cloudrootRemovalFailed, invalidInput, isLoginRefused, tail, type Endpoint } from './errors';
import { shellQuote } from './shell';

/**
 * Offboarding's last step on the host: the service user `createCloudroot` made goes, with its home (and so every
 * key in its authorized_keys, the tunnels' forward-only ones included) and its sudoers drop-in.
 *
 * We remove the user we are logged in as. `userdel` refuses a user with running processes, so the usual way is a
 * detached job that waits for our session to close; its outcome could then only be guessed from outside. Instead
 * the removal runs while our session is open: the user's other processes (other sessions, a tunnel still holding
 * its forward) are killed, our own session's processes are spared, and `userdel -f` removes the user although our
 * session still runs under its uid (the processes keep running; they exit when we disconnect). The script then
 * checks the result and reports it, and the activity checks from outside that the login is refused.
 *
 * The removal itself runs in its own session (`setsid`), with SIGHUP and SIGPIPE ignored: a connection that drops
 * half-way does not stop it half-done. Its order keeps every partial state retryable: the sudoers drop-in goes only
 * after `userdel` succeeded, so a failed `userdel` leaves a login that can still `sudo -n` and try again.
 */

/** The user was removed (exit 0 with `remove-cloudroot-ok`). 30-35: refused before changing anything. */
export const REMOVAL_EXIT = {
  notSudoUser: 30,
  missingTool: 31,
  unknownUser: 32,
  uidZero: 33,
  sharedUid: 34,
  sharedGroup: 35,
  userdelFailed: 40,
  workerFailed: 41,
} as const;

const PREFLIGHT_CODES = new Set<number>([30, 31, 32, 33, 34, 35]);

/** Runs detached (setsid) as root: ends the user's other processes, removes the user, then its sudo rule. */
const WORKER = `set -u
U=$1 UID_=$2 RM_HOME=$3 KEEP=$4 SUDOERS=$5
# Live processes running as the user (real or effective uid), except our own session's. (Zombies wait for their
# parent to reap them; killing them again would do nothing.)
others() {
  for d in /proc/[0-9]*; do
    p=\${d#/proc/}
    case "$KEEP" in *" $p "*) continue ;; esac
    while read -r k r e _; do
      case "$k" in
        State:) [ "$r" != Z ] || break ;;
        Uid:) if [ "$r" = "$UID_" ] || [ "$e" = "$UID_" ]; then echo "$p"; fi; break ;;
      esac
    done 2>/dev/null < "$d/status"
  done
}
seen=' '
for _ in $(seq 1 50); do
  pids=$(others)
  [ -n "$pids" ] || break
  for p in $pids; do
    kill -KILL "$p" 2>/dev/null || true
    case "$seen" in *" $p "*) ;; *) seen="$seen$p " ;; esac
  done
  sleep 0.1
done
set -- $seen
echo "processes=$#"
# -f: our own session still runs under the uid until the controller disconnects.
if [ "$RM_HOME" = yes ]; then userdel -f -r "$U"; else userdel -f "$U"; fi
echo "userdel=$?"
# Only once the user is gone: until then a retry needs the rule to sudo again.
if ! getent passwd "$U" >/dev/null; then rm -f "$SUDOERS"; fi
`;

/**
 * The remote script (bash, run as root through `sudo -n`), sent on stdin; the user name is validated and
 * single-quoted. Everything is inside `main`, so bash has read all of it before the first command runs. Prints
 * `key=value` lines (user, home, sudoers, processes) and `remove-cloudroot-ok` when the user is gone.
 */
export function removeCloudrootScript(username: string): string {
  if (!USERNAME_PATTERN.test(username) || username === 'root') throw new Error('invalid username');
  return `set -euo pipefail
OUT='' ERR=''
main() {
trap '' HUP PIPE
local U=${shellQuote(username)}
local SUDOERS="/etc/sudoers.d/90-$U"
fail() { echo "remove-cloudroot: $2" >&2; exit "$1"; }
# Only ever the user this session logged in as: sudo names it.
[ "\${SUDO_USER:-}" = "$U" ] || fail 30 "run by \${SUDO_USER:-an unknown user}, not by $U"
local c
for c in userdel setsid awk getent; do command -v "$c" >/dev/null 2>&1 || fail 31 "$c not found"; done
local ENT NAME_ PW_ UID_ GID_ GECOS_ H SH_
ENT=$(getent passwd "$U") || fail 32 "$U is not in the user database"
IFS=: read -r NAME_ PW_ UID_ GID_ GECOS_ H SH_ <<< "$ENT"
[ "$UID_" != 0 ] || fail 33 "$U has uid 0"
# Processes are ended by uid, and userdel -f removes the user's group even when others still use it.
[ "$(getent passwd | awk -F: -v u="$UID_" '$3 == u' | wc -l)" -eq 1 ] || fail 34 "another user has uid $UID_"
if [ "$(getent group "$GID_" | cut -d: -f1)" = "$U" ] &&
   [ "$(getent passwd | awk -F: -v g="$GID_" -v n="$U" '$4 == g && $1 != n' | wc -l)" -ne 0 ]; then
  fail 35 "group $U is the primary group of another user"
fi
# The home goes only when it is the user's own directory.
local RM_HOME=yes KEPT=''
if [ -z "$H" ] || [ "\${H#/}" = "$H" ] || [ "$H" = / ]; then RM_HOME=no; KEPT="'$H' is not a directory of its own"
elif [ -L "$H" ]; then RM_HOME=no; KEPT="$H is a symlink"
elif [ -e "$H" ] && [ "$(stat -c %u "$H")" != "$UID_" ]; then RM_HOME=no; KEPT="$H belongs to another user"
elif [ "$(getent passwd | awk -F: -v h="$H" '$6 == h' | wc -l)" -gt 1 ]; then RM_HOME=no; KEPT="$H is shared with another user"
fi
# Our own session: this shell's ancestors (sudo, the login's sshd) are spared until we disconnect.
local KEEP=' ' p=$$
while [ "\${p:-0}" -gt 1 ]; do
  KEEP="$KEEP$p "
  p=$(awk '$1 == "PPid:" { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
done
local rc=0
# Global: the EXIT trap runs after main has returned.
OUT=$(mktemp)
ERR=$(mktemp)
trap 'rm -f "$OUT" "$ERR"' EXIT
setsid -w bash -c ${shellQuote(WORKER)} remove-cloudroot "$U" "$UID_" "$RM_HOME" "$KEEP" "$SUDOERS" \\
  </dev/null >"$OUT" 2>"$ERR" || rc=$?
cat "$ERR" >&2 || true
[ "$rc" -eq 0 ] || fail 41 "the removal job failed (exit $rc)"
grep -E '^(processes|userdel)=' "$OUT" || true
if getent passwd "$U" >/dev/null; then echo user=present; fail 40 "userdel did not remove $U"; fi
echo user=removed
if [ "$RM_HOME" = no ]; then echo "home=kept:$KEPT"
elif [ -e "$H" ]; then echo "home=left:$H"
else echo "home=removed:$H"; fi
if [ -e "$SUDOERS" ]; then echo "sudoers=left:$SUDOERS"; else echo "sudoers=removed:$SUDOERS"; fi
echo remove-cloudroot-ok
}
main
`;
}

export interface RemovalReport {
  /** Processes of the user's other sessions that were ended. */
  processes: number;
  home: { state: 'removed' | 'kept' | 'left'; detail: string };
  sudoers: { state: 'removed' | 'left'; path: string };
}

/** Reads the script's `key=value` lines; undefined when it did not report a removed user. */
export function parseRemovalOutput(stdout: string): RemovalReport | undefined {
  const lines = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) lines.set(line.slice(0, i), line.slice(i + 1));
  }
  if (!stdout.split('\n').includes('remove-cloudroot-ok') || lines.get('user') !== 'removed') return undefined;
  const split = (v: string | undefined): [string, string] => {
    const j = (v ?? '').indexOf(':');
    return j < 0 ? [v ?? '', ''] : [v!.slice(0, j), v!.slice(j + 1)];
  };
  const [home, homeDetail] = split(lines.get('home'));
  const [sudoers, sudoersPath] = split(lines.get('sudoers'));
  return {
    processes: Number(lines.get('processes') ?? 0) || 0,
    home: { state: home === 'kept' || home === 'left' ? home : 'removed', detail: homeDetail },
    sudoers: { state: sudoers === 'left' ? 'left' : 'removed', path: sudoersPath },
  };
}

/** What the offboarding records about a removal. */
export function removalNotes(username: string, r: RemovalReport): string[] {
  const notes = [`removed user ${username}`];
  if (r.home.state === 'removed') notes.push(`removed its home ${r.home.detail} (authorized_keys with it)`);
  else if (r.home.state === 'kept') notes.push(`kept its home: ${r.home.detail}`);
  else notes.push(`its home ${r.home.detail} could not be removed`);
  notes.push(r.sudoers.state === 'removed' ? `removed ${r.sudoers.path}` : `${r.sudoers.path} is still there`);
  if (r.processes > 0) notes.push(`ended ${r.processes} process(es) of its other sessions`);
  return notes;
}

/** Maps a failed run to a named failure; refusals before any change and a sudo that says no need a person. */
function removalFailure(e: Endpoint, username: string, res: ExecResult): Error {
  const code = res.code ?? -1;
  if (code === 1 && /^sudo: /m.test(res.stderr)) {
    return cloudrootRemovalFailed(e, `${username} can log in but "sudo -n" refuses it (${tail(res.stderr, [], 160)}): remove the user by hand`, { nonRetryable: true });
  }
  if (code === 127) return cloudrootRemovalFailed(e, `sudo or bash is missing on the host: ${tail(res.stderr, [], 160)}`, { nonRetryable: true });
  return cloudrootRemovalFailed(e, `the removal script failed (exit ${res.code}): ${tail(res.stderr)}`, { nonRetryable: PREFLIGHT_CODES.has(code) });
}

export interface RemoveCloudrootInput {
  hostId: string;
  /** The service user's login: its key credential, the pinned host key, and the jump host when there is one. */
  target: SshTarget;
}

export interface RemoveCloudrootOptions {
  /** Checks from outside that the login is refused; the first right after the removal. */
  verifyAttempts?: number;
  verifyDelayMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether the server now refuses the login; anything else (accepted, unreachable) is retried, then reported. */
async function verifyLoginRefused(deps: ActivityDeps, target: SshTarget, attempts: number, delayMs: number): Promise<string | undefined> {
  let last = 'not checked';
  for (let i = 0; i < attempts; i++) {
    if (i > 0) await sleep(delayMs);
    try {
      const s = await dialSsh(target, { keyring: deps.keyring, log: deps.log });
      await s.close();
      last = 'the login was still accepted';
    } catch (err) {
      if (isLoginRefused(err)) return undefined;
      last = `the check failed: ${(err as Error).message}`;
    }
  }
  return `after ${attempts} check(s) ${last}`;
}

/**
 * Removes the service user (see the top of this file). Idempotent: a login already refused at the start is
 * `alreadyGone`. An unreachable host is the retryable HostUnreachable, a changed host key HostKeyMismatch.
 */
export function removeCloudroot(deps: ActivityDeps, opts: RemoveCloudrootOptions = {}) {
  const attempts = Math.max(1, opts.verifyAttempts ?? 5);
  const delayMs = opts.verifyDelayMs ?? 1_000;
  return async function removeCloudroot(input: RemoveCloudrootInput): Promise<CloudrootRemovalResult> {
    const { target } = input;
    const username = target?.credential?.username;
    if (typeof username !== 'string' || !USERNAME_PATTERN.test(username) || username === 'root') {
      throw invalidInput('target.credential.username must be the service user (a valid name, not root)');
    }
    if (!target.hostKeySha256) throw invalidInput(`no pinned host key for ${target.address}: offboarding never trusts a key on first use`);
    const e: Endpoint = { address: target.address, port: target.port };
    const log = deps.log.child({ hostId: input.hostId, address: target.address, username });

    let session;
    try {
      session = await dialSsh(target, { keyring: deps.keyring, log: deps.log });
    } catch (err) {
      if (!isLoginRefused(err)) throw err;
      log.info('service user already gone: its login is refused');
      return { removed: false, alreadyGone: true, verified: 'login-refused', notes: [`the ${username} login was already refused: nothing to remove`] };
    }
    let res: ExecResult;
    try {
      res = await session.exec('sudo -n bash -s', { stdin: removeCloudrootScript(username), timeoutMs: 120_000 });
    } finally {
      await session.close();
    }
    const report = res.code === 0 ? parseRemovalOutput(res.stdout) : undefined;
    if (!report) throw removalFailure(e, username, res);

    const notes = removalNotes(username, report);
    const unverified = await verifyLoginRefused(deps, target, attempts, delayMs);
    if (unverified) notes.push(unverified);
    log.info('service user removed', { verified: !unverified, notes });
    return { removed: true, alreadyGone: false, verified: unverified ? 'unverified' : 'login-refused', notes };
  };
}
