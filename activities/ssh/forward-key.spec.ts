import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FORWARD_KEY_TAG_PREFIX, forwardKeyLine, forwardKeyScript, parseForwardKeyOutput, revokeForwardKeyScript } from './forward-key';

// The scripts run here with sh, against a throwaway HOME: what the login's shell does on the server.

const KEY_A = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const KEY_B = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
const line = (key: string, tunnelId: string) => forwardKeyLine(key, '10.0.0.1:18086', tunnelId);

describe('the authorized_keys scripts', () => {
  let home: string;
  beforeEach(() => {
    home = mkdtempSync(path.join(os.tmpdir(), 'ao-fk-spec-'));
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  const ak = () => path.join(home, '.ssh', 'authorized_keys');
  const run = (script: string) => {
    const r = spawnSync('sh', ['-s'], { input: script, env: { PATH: process.env.PATH, HOME: home } });
    return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  };
  const others = [
    '# operator keys',
    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOPERATOROPERATOROPERATOROPERATOROPERATOR0 admin@laptop',
    // Not ours to touch: another tunnel, a longer id with ours as prefix, our tag not in the last field.
    line(KEY_B, 'proxy-10.0.0.1-p2222'),
    `restrict ${KEY_B} ${FORWARD_KEY_TAG_PREFIX}t1-extra`,
    `restrict ${KEY_B} ${FORWARD_KEY_TAG_PREFIX}t1 trailing-comment`,
    '',
  ];

  it('authorize adds the line, keeps every other line, and replaces its own line on the next run', () => {
    mkdirSync(path.join(home, '.ssh'), { mode: 0o700 });
    writeFileSync(ak(), others.join('\n') + '\n');
    const first = run(forwardKeyScript(line(KEY_A, 't1'), 't1'));
    expect(first).toMatchObject({ code: 0 });
    expect(parseForwardKeyOutput(first.stdout)).toBe(0);
    expect(readFileSync(ak(), 'utf8')).toBe([...others, line(KEY_A, 't1')].join('\n') + '\n');
    expect(lstatSync(ak()).mode & 0o777).toBe(0o600);

    const second = run(forwardKeyScript(line(KEY_B, 't1'), 't1'));
    expect(parseForwardKeyOutput(second.stdout)).toBe(1);
    expect(readFileSync(ak(), 'utf8')).toBe([...others, line(KEY_B, 't1')].join('\n') + '\n');
  });

  it('authorize creates ~/.ssh and the file when there are none', () => {
    const r = run(forwardKeyScript(line(KEY_A, 't1'), 't1'));
    expect(parseForwardKeyOutput(r.stdout)).toBe(0);
    expect(readFileSync(ak(), 'utf8')).toBe(line(KEY_A, 't1') + '\n');
    expect(lstatSync(path.join(home, '.ssh')).mode & 0o777).toBe(0o700);
  });

  it('revoke takes out exactly this tunnel\'s line and keeps the others byte for byte', () => {
    mkdirSync(path.join(home, '.ssh'), { mode: 0o700 });
    const before = [others[0], line(KEY_A, 't1'), ...others.slice(1)].join('\n') + '\n';
    writeFileSync(ak(), before, { mode: 0o600 });
    const r = run(revokeForwardKeyScript('t1'));
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(parseForwardKeyOutput(r.stdout)).toBe(1);
    expect(readFileSync(ak(), 'utf8')).toBe(others.join('\n') + '\n');
  });

  it('revoke without a line leaves the file untouched, and without a file creates nothing', () => {
    const r0 = run(revokeForwardKeyScript('t1'));
    expect(parseForwardKeyOutput(r0.stdout)).toBe(0);
    expect(() => lstatSync(path.join(home, '.ssh'))).toThrow();

    mkdirSync(path.join(home, '.ssh'), { mode: 0o700 });
    writeFileSync(ak(), others.join('\n') + '\n', { mode: 0o644 });
    const before = lstatSync(ak());
    const r1 = run(revokeForwardKeyScript('t1'));
    expect(parseForwardKeyOutput(r1.stdout)).toBe(0);
    const after = lstatSync(ak());
    expect([after.ino, after.mtimeMs, after.mode]).toEqual([before.ino, before.mtimeMs, before.mode]);
  });

  it('both refuse a symlinked authorized_keys (exit 20) and leave its target alone', () => {
    mkdirSync(path.join(home, '.ssh'), { mode: 0o700 });
    const elsewhere = path.join(home, 'managed-keys');
    writeFileSync(elsewhere, line(KEY_A, 't1') + '\n');
    symlinkSync(elsewhere, ak());
    for (const script of [revokeForwardKeyScript('t1'), forwardKeyScript(line(KEY_B, 't1'), 't1')]) {
      const r = run(script);
      expect(r.code).toBe(20);
      expect(r.stderr).toContain('is a symlink');
      expect(parseForwardKeyOutput(r.stdout)).toBeUndefined();
    }
    expect(readFileSync(elsewhere, 'utf8')).toBe(line(KEY_A, 't1') + '\n');
  });

  it('refuses tunnel ids that could carry shell or awk syntax', () => {
    for (const bad of ['', 'a b', "t'1", 't;id', '$(id)', 'a'.repeat(81)]) {
      expect(() => revokeForwardKeyScript(bad)).toThrow('invalid tunnel id');
    }
  });
});
