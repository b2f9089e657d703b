import { execFileSync, spawnSync } from 'node:child_process';
import { BEGIN_MARKER, cloudrootScript, GATE_TRIPPED, SUDO_GATE, USERNAME_PATTERN } from './cloudroot';
import { generateEd25519 } from './keys';

const publicKey = generateEd25519({ comment: 'agent-onboarding:h1' }).public;

describe('cloudrootScript', () => {
  it('is valid bash carrying the user and key as quoted data', () => {
    const script = cloudrootScript('cloudroot', publicKey);
    execFileSync('bash', ['-n'], { input: script });
    expect(script).toContain(`KEY='${publicKey}'`);
    expect(script).toContain('visudo -cf');
  });

  it('refuses user names and keys that could carry shell syntax', () => {
    for (const bad of ['root;id', 'Cloud', '-x', 'a'.repeat(33), 'a b', '$(id)', '']) {
      expect(USERNAME_PATTERN.test(bad)).toBe(false);
      expect(() => cloudrootScript(bad, publicKey)).toThrow('invalid username');
    }
    expect(() => cloudrootScript('cloudroot', `${publicKey}'; id; '`)).toThrow('invalid public key');
    expect(() => cloudrootScript('cloudroot', 'ssh-rsa AAAA')).toThrow('invalid public key');
  });
});

describe('the sudo gate', () => {
  const gate = (input: string) => spawnSync('bash', ['-c', SUDO_GATE], { input });

  it('runs the script once sudo has taken the password line', () => {
    const r = gate(`${BEGIN_MARKER}\necho ran-script\n`);
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toBe('ran-script\n');
  });

  it('stops without executing anything when the password line was not consumed', () => {
    const r = gate(`echo leaked-password\n${BEGIN_MARKER}\necho ran-script\n`);
    expect(r.status).toBe(GATE_TRIPPED);
    expect(r.stdout.toString()).toBe('');
    expect(r.stderr.toString()).toBe('');
  });
});
