import { createHash } from 'node:crypto';
import { fingerprintSha256 } from './dialer';
import { FORWARD_KEY_TAG_PREFIX } from './forward-key';
import { shellQuote } from './shell';

/**
 * The service user's `~/.ssh/authorized_keys` as key rotation sees it: read whole, changed here (pure functions),
 * and written back atomically only if nobody changed it in between. Two kinds of lines are ours: cloudroot's login
 * keys (`ssh-ed25519 <key> agent-onboarding:<hostId>`, see cloudroot.ts) and the tunnels' forward-only keys
 * (`restrict,port-forwarding,permitlisten=… <key> agent-onboarding-forward:<tunnelId>`, see forward-key.ts).
 */

/** Key types sshd accepts in authorized_keys (certificates included). */
const KEY_TYPE = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)(-cert-v01@openssh\.com)?$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export interface AuthorizedKey {
  /** The options field as written (`restrict,port-forwarding,…`), or '' when the line has none. */
  options: string;
  type: string;
  /** OpenSSH SHA256 fingerprint of the key blob. */
  sha256: string;
  comment: string;
}

/** Skips an options field the way sshd does: up to the first whitespace outside double quotes (`\"` inside). */
function optionsEnd(line: string): number {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted && c === '\\' && line[i + 1] === '"') i++;
    else if (c === '"') quoted = !quoted;
    else if (!quoted && (c === ' ' || c === '\t')) return i;
  }
  return -1;
}

function keyAt(rest: string, options: string): AuthorizedKey | undefined {
  const [type, blob, ...comment] = rest.trim().split(/[ \t]+/);
  if (!type || !KEY_TYPE.test(type) || !blob || !BASE64.test(blob)) return undefined;
  const raw = Buffer.from(blob, 'base64');
  // The blob names its own type first: a line whose two do not agree is not a key sshd would take.
  const len = raw.length >= 4 ? raw.readUInt32BE(0) : 0;
  if (raw.subarray(4, 4 + len).toString('latin1') !== type) return undefined;
  return { options, type, sha256: fingerprintSha256(raw), comment: comment.join(' ') };
}

/** The key on one authorized_keys line, or undefined for blank lines, comments and lines that hold no key. */
export function parseAuthorizedKey(line: string): AuthorizedKey | undefined {
  const l = line.replace(/\r$/, '').trim();
  if (l === '' || l.startsWith('#')) return undefined;
  const plain = keyAt(l, '');
  if (plain) return plain;
  const end = optionsEnd(l);
  return end > 0 ? keyAt(l.slice(end), l.slice(0, end)) : undefined;
}

/**
 * A tunnel's forward-only key: exactly what the cloudroot script keeps when it rewrites the file (its awk: the last
 * field starts with the tag and the first field with `restrict,port-forwarding,permitlisten=`).
 */
export function isForwardOnlyLine(line: string): boolean {
  const fields = line.trim().split(/[ \t]+/);
  return fields.length > 1 && fields[fields.length - 1].startsWith(FORWARD_KEY_TAG_PREFIX) && /^restrict,port-forwarding,permitlisten=/.test(fields[0]);
}

function lines(content: string): string[] {
  const all = content.split('\n');
  if (all[all.length - 1] === '') all.pop();
  return all;
}

const joined = (ls: string[]) => (ls.length === 0 ? '' : ls.join('\n') + '\n');

/** The file with `line` added at the end; unchanged when a line with the same key is already there. */
export function withKeyAdded(content: string, line: string): { content: string; added: boolean } {
  const key = parseAuthorizedKey(line);
  if (!key || line.includes('\n')) throw new Error('not an authorized_keys line');
  const current = lines(content);
  if (current.some((l) => parseAuthorizedKey(l)?.sha256 === key.sha256)) return { content, added: false };
  return { content: joined([...current, line]), added: true };
}

export interface Retained {
  content: string;
  /** Login key lines taken out (and lines that hold no key sshd would take: they are no one's key). */
  removed: number;
  /** Lines of the key that stays. */
  kept: number;
  /** Forward-only lines of tunnels, left as they were. */
  forwardOnly: number;
}

/**
 * Every line but comments, blank lines, the tunnels' forward-only keys and the key `keepSha256` goes: all older
 * cloudroot keys, and orphans of an `addCloudrootKey` that was retried. Kept lines stay as they were, in order.
 */
export function retainOnly(content: string, keepSha256: string): Retained {
  const out: string[] = [];
  let removed = 0;
  let kept = 0;
  let forwardOnly = 0;
  for (const l of lines(content)) {
    const t = l.trim();
    if (t === '' || t.startsWith('#')) out.push(l);
    else if (isForwardOnlyLine(l)) {
      forwardOnly++;
      out.push(l);
    } else if (parseAuthorizedKey(l)?.sha256 === keepSha256) {
      kept++;
      out.push(l);
    } else removed++;
  }
  return { content: removed === 0 ? content : joined(out), removed, kept, forwardOnly };
}

export const sha256Hex = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/** Refusals before anything was changed: someone else manages the file, or there is none. */
export const KEYS_REFUSED = 20;
/** The file changed between our read and our write (a tunnel's key was authorized meanwhile): read again. */
export const KEYS_CHANGED = 21;

const PREAMBLE = `set -eu
fail() { echo "authorized-keys: $1" >&2; exit ${KEYS_REFUSED}; }
[ -n "\${HOME:-}" ] && [ -d "$HOME" ] || fail 'the login has no home directory'
[ ! -L "$HOME/.ssh" ] || fail "$HOME/.ssh is a symlink"
AK="$HOME/.ssh/authorized_keys"
[ ! -L "$AK" ] || fail "$AK is a symlink"
[ -f "$AK" ] || fail "$AK does not exist"
[ "$(stat -c %u "$AK")" = "$(id -u)" ] || fail "$AK belongs to another user"
sum() { sha256sum | cut -d' ' -f1; }
`;

const READ_MARKER = '--authorized-keys--';

/**
 * POSIX sh, run as the login itself: prints `sha256=<hex of the file>`, a marker line, then the file. (From a copy,
 * so the sum and the text are of the same bytes.)
 */
export const READ_KEYS_SCRIPT = `${PREAMBLE}T=$(mktemp)
trap 'rm -f "$T"' EXIT
cat "$AK" > "$T"
echo "sha256=$(sum < "$T")"
echo ${READ_MARKER}
cat "$T"
`;

/** The file as READ_KEYS_SCRIPT printed it, or undefined when the output is not that. */
export function parseReadKeys(stdout: string): { sha256: string; content: string } | undefined {
  const m = new RegExp(`^sha256=([0-9a-f]{64})\\n${READ_MARKER}\\n`).exec(stdout);
  return m ? { sha256: m[1], content: stdout.slice(m[0].length) } : undefined;
}

/**
 * POSIX sh, run as the login itself: replaces the file with `content` if it still has the sum `expectSha256`
 * (else exit KEYS_CHANGED), through a temp file in ~/.ssh with the old file's mode and group, checked, then moved
 * over it. Prints `authorized-keys-ok`.
 */
export function writeKeysScript(expectSha256: string, content: string): string {
  if (!/^[0-9a-f]{64}$/.test(expectSha256)) throw new Error('invalid sha256');
  return `${PREAMBLE}EXPECT=${expectSha256}
WANT=${sha256Hex(content)}
NEW=${shellQuote(content)}
[ "$(sum < "$AK")" = "$EXPECT" ] || { echo "authorized-keys: $AK changed while it was being edited" >&2; exit ${KEYS_CHANGED}; }
MODE=$(stat -c %a "$AK")
GROUP=$(stat -c %g "$AK")
T=$(mktemp "$HOME/.ssh/.authorized_keys.XXXXXX")
trap 'rm -f "$T"' EXIT
printf '%s' "$NEW" > "$T"
[ "$(sum < "$T")" = "$WANT" ] || fail 'the new file did not come out as sent'
chgrp "$GROUP" "$T" 2>/dev/null || true
chmod "$MODE" "$T"
mv -f "$T" "$AK"
trap - EXIT
echo authorized-keys-ok
`;
}
