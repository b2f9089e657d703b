import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  KEYS_CHANGED, KEYS_REFUSED, READ_KEYS_SCRIPT, isForwardOnlyLine, parseAuthorizedKey, parseReadKeys, retainOnly, sha256Hex,
  withKeyAdded, writeKeysScript,
} from './authorized-keys';
import { cloudrootKeyComment } from './cloudroot';
import { FORWARD_KEY_TAG_PREFIX, forwardKeyLine } from './forward-key';
import { generateEd25519 } from './keys';

const pub = (comment?: string) => generateEd25519(comment ? { comment } : {}).public.trim();
const bare = (line: string) => line.split(' ').slice(0, 2).join(' ');
const OLD = pub(cloudrootKeyComment('h1'));
const NEW = pub(cloudrootKeyComment('h1'));
const ORPHAN = pub(cloudrootKeyComment('h1'));
const TUNNEL = forwardKeyLine(bare(pub()), '127.0.0.1:18086', 'h1');
const PROXY_TUNNEL = forwardKeyLine(bare(pub()), '[fd00::1]:18087', 'proxy-10.0.0.1');

/** What ssh-keygen says the line's fingerprint is (the reference the parser must agree with). */
function sshKeygenSha256(line: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ao-ak-fp-'));
  try {
    writeFileSync(path.join(dir, 'k'), line + '\n');
    return execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', path.join(dir, 'k')]).toString().split(' ')[1];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('parseAuthorizedKey', () => {
  const hasKeygen = spawnSync('ssh-keygen', ['-?']).error === undefined;

  it('fingerprints keys as OpenSSH does, with and without options', () => {
    const k = parseAuthorizedKey(OLD)!;
    expect(k).toMatchObject({ options: '', type: 'ssh-ed25519', comment: 'agent-onboarding:h1' });
    const t = parseAuthorizedKey(TUNNEL)!;
    expect(t.options).toBe('restrict,port-forwarding,permitlisten="127.0.0.1:18086",command="false"');
    expect(t.comment).toBe(`${FORWARD_KEY_TAG_PREFIX}h1`);
    if (hasKeygen) {
      expect(k.sha256).toBe(sshKeygenSha256(OLD));
      expect(t.sha256).toBe(sshKeygenSha256(TUNNEL));
    }
  });

  it('skips options with quoted spaces and escaped quotes, as sshd does', () => {
    const line = `from="10.0.0.1,10.0.0.2",command="echo \\"a b\\"; true",environment="X=a b" ${NEW} comment with spaces`;
    expect(parseAuthorizedKey(line)).toMatchObject({ type: 'ssh-ed25519', sha256: parseAuthorizedKey(NEW)!.sha256, comment: 'agent-onboarding:h1 comment with spaces' });
    expect(parseAuthorizedKey(`\t${NEW}\r`)?.sha256).toBe(parseAuthorizedKey(NEW)!.sha256);
  });

  it('finds no key in blank lines, comments and garbage', () => {
    const [, blob] = NEW.split(' ');
    for (const l of ['', '   ', '# ' + NEW, 'not a key', `ssh-ed25519 ${blob.slice(0, 20)}!`, `ssh-rsa ${blob}`, 'restrict ssh-ed25519']) {
      expect(parseAuthorizedKey(l)).toBeUndefined();
    }
  });
});

describe('isForwardOnlyLine', () => {
  it('is what the cloudroot script keeps: restricted and tagged in the last field', () => {
    expect(isForwardOnlyLine(TUNNEL)).toBe(true);
    expect(isForwardOnlyLine(PROXY_TUNNEL)).toBe(true);
    expect(isForwardOnlyLine(`${bare(NEW)} ${FORWARD_KEY_TAG_PREFIX}h1`)).toBe(false); // a login key with a forward tag
    expect(isForwardOnlyLine(`${TUNNEL} trailing-comment`)).toBe(false);
    expect(isForwardOnlyLine(OLD)).toBe(false);
  });
});

describe('withKeyAdded / retainOnly', () => {
  const file = ['# managed by agent-onboarding', OLD, TUNNEL, '', PROXY_TUNNEL].join('\n') + '\n';

  it('adds a key at the end, once', () => {
    const added = withKeyAdded(file, NEW);
    expect(added).toEqual({ content: file + NEW + '\n', added: true });
    expect(withKeyAdded(added.content, NEW)).toEqual({ content: added.content, added: false });
    // The same key with another comment is the same key.
    expect(withKeyAdded(added.content, `${bare(NEW)} other`).added).toBe(false);
    // A last line without its newline gets one first.
    expect(withKeyAdded(OLD, NEW).content).toBe(`${OLD}\n${NEW}\n`);
    expect(withKeyAdded('', NEW).content).toBe(`${NEW}\n`);
    expect(() => withKeyAdded(file, 'garbage')).toThrow();
    expect(() => withKeyAdded(file, `${NEW}\n${OLD}`)).toThrow();
  });

  it('keeps the new key, the forward-only keys, comments and blank lines; removes old keys and orphans', () => {
    const before = file + ORPHAN + '\n' + `from="10.0.0.9" ${bare(pub())} operator\n` + 'garbage line\n' + NEW + '\n';
    const r = retainOnly(before, parseAuthorizedKey(NEW)!.sha256);
    expect(r).toEqual({
      content: ['# managed by agent-onboarding', TUNNEL, '', PROXY_TUNNEL, NEW].join('\n') + '\n',
      removed: 4,
      kept: 1,
      forwardOnly: 2,
    });
    // Idempotent: the second run removes nothing and returns the text as it was.
    expect(retainOnly(r.content, parseAuthorizedKey(NEW)!.sha256)).toEqual({ content: r.content, removed: 0, kept: 1, forwardOnly: 2 });
  });

  it('says when the key to keep is not there (the caller then removes nothing)', () => {
    expect(retainOnly(file, parseAuthorizedKey(NEW)!.sha256)).toMatchObject({ kept: 0, removed: 1 });
  });

  it('never keeps a forward-only key as the login key, and never counts it as removed', () => {
    const r = retainOnly(file, parseAuthorizedKey(TUNNEL)!.sha256);
    expect(r).toMatchObject({ kept: 0, forwardOnly: 2, removed: 1 });
  });
});

// The scripts run here with sh against a throwaway HOME: what the login's shell does on the server.
describe('the read and write scripts', () => {
  let home: string;
  beforeEach(() => {
    home = mkdtempSync(path.join(os.tmpdir(), 'ao-ak-spec-'));
    mkdirSync(path.join(home, '.ssh'), { mode: 0o700 });
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));
  const ak = () => path.join(home, '.ssh', 'authorized_keys');
  const run = (script: string) => {
    const r = spawnSync('sh', ['-s'], { input: script, env: { PATH: process.env.PATH, HOME: home } });
    return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  };
  // Quotes, a backslash, `$` and UTF-8 in a comment: the text must come back byte for byte.
  const odd = `${OLD}\n# it's "quoted" \\ $(id) ü\n${TUNNEL}\n`;

  it('reads the file with its sum, and writes a change atomically keeping its mode', () => {
    writeFileSync(ak(), odd, { mode: 0o640 });
    chmodSync(ak(), 0o640);
    const read = parseReadKeys(run(READ_KEYS_SCRIPT).stdout)!;
    expect(read).toEqual({ sha256: sha256Hex(odd), content: odd });
    const next = withKeyAdded(read.content, NEW).content;
    const inode = statSync(ak()).ino;
    const w = run(writeKeysScript(read.sha256, next));
    expect(w).toMatchObject({ code: 0, stderr: '' });
    expect(w.stdout).toContain('authorized-keys-ok');
    expect(readFileSync(ak(), 'utf8')).toBe(next);
    expect(statSync(ak()).mode & 0o777).toBe(0o640);
    expect(statSync(ak()).ino).not.toBe(inode); // replaced, not edited in place
    expect(readFileSync(ak(), 'utf8').endsWith(`${NEW}\n`)).toBe(true);
    expect(execFileSync('ls', ['-A', path.join(home, '.ssh')]).toString()).toBe('authorized_keys\n'); // no temp file left
  });

  it('refuses to write over a file that changed since it was read', () => {
    writeFileSync(ak(), odd);
    const read = parseReadKeys(run(READ_KEYS_SCRIPT).stdout)!;
    writeFileSync(ak(), odd + PROXY_TUNNEL + '\n'); // a tunnel's key authorized meanwhile
    const w = run(writeKeysScript(read.sha256, withKeyAdded(read.content, NEW).content));
    expect(w.code).toBe(KEYS_CHANGED);
    expect(readFileSync(ak(), 'utf8')).toBe(odd + PROXY_TUNNEL + '\n');
  });

  it('refuses a symlinked or missing file (exit 20) and leaves things alone', () => {
    const elsewhere = path.join(home, 'elsewhere');
    writeFileSync(elsewhere, odd);
    symlinkSync(elsewhere, ak());
    for (const script of [READ_KEYS_SCRIPT, writeKeysScript(sha256Hex(odd), '')]) {
      const r = run(script);
      expect(r.code).toBe(KEYS_REFUSED);
      expect(r.stderr).toContain('is a symlink');
    }
    expect(readFileSync(elsewhere, 'utf8')).toBe(odd);
    rmSync(ak());
    expect(run(READ_KEYS_SCRIPT)).toMatchObject({ code: KEYS_REFUSED, stderr: expect.stringContaining('does not exist') });
  });

  it('parseReadKeys takes only what the script prints', () => {
    expect(parseReadKeys('')).toBeUndefined();
    expect(parseReadKeys('sha256=abc\n--authorized-keys--\n')).toBeUndefined();
    expect(parseReadKeys(`sha256=${'a'.repeat(64)}\n--authorized-keys--\n`)).toEqual({ sha256: 'a'.repeat(64), content: '' });
  });

  it('writeKeysScript takes only a sha256 for the expected sum', () => {
    expect(() => writeKeysScript("x'; id; '", '')).toThrow('invalid sha256');
  });
});
