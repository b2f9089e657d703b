import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseRemovalOutput, removalNotes, removeCloudrootScript, REMOVAL_EXIT } from './remove-cloudroot';

describe('removeCloudrootScript', () => {
  it('is valid bash carrying the user name as quoted data', () => {
    const script = removeCloudrootScript('cloudroot');
    execFileSync('bash', ['-n'], { input: script });
    expect(script).toContain('local U=cloudroot\n');
    expect(script).toContain('SUDOERS="/etc/sudoers.d/90-$U"');
    expect(script).toContain('userdel -f -r "$U"');
    // Read in full before anything runs: the last line calls the function that holds everything.
    expect(script.trimEnd().split('\n').pop()).toBe('main');
  });

  it('refuses root and names that could carry shell syntax', () => {
    for (const bad of ['root', 'root;id', 'Cloud', '-x', 'a b', '$(id)', '']) {
      expect(() => removeCloudrootScript(bad)).toThrow('invalid username');
    }
  });

  it('stops before changing anything unless sudo ran it for that very user', () => {
    // Run on this machine, so for a name no user has: even a broken guard would only reach "no such user".
    const name = `ao-spec-${randomBytes(4).toString('hex')}`;
    expect(spawnSync('getent', ['passwd', name]).status).toBe(2);
    const run = (env: Record<string, string>) =>
      spawnSync('bash', ['-s'], { input: removeCloudrootScript(name), env: { PATH: process.env.PATH!, ...env } });
    const notSudo = run({});
    expect(notSudo.status).toBe(REMOVAL_EXIT.notSudoUser);
    expect(notSudo.stderr.toString()).toContain(`not by ${name}`);
    expect(run({ SUDO_USER: 'someone-else' }).status).toBe(REMOVAL_EXIT.notSudoUser);
    const unknown = run({ SUDO_USER: name });
    expect(unknown.status).toBe(REMOVAL_EXIT.unknownUser);
    expect(unknown.stdout.toString()).toBe('');
  });
});

describe('parseRemovalOutput', () => {
  const ok = [
    'processes=2',
    'userdel=0',
    'user=removed',
    'home=removed:/home/cloudroot',
    'sudoers=removed:/etc/sudoers.d/90-cloudroot',
    'remove-cloudroot-ok',
    '',
  ].join('\n');

  it('reads what was removed and what was left', () => {
    const r = parseRemovalOutput(ok);
    expect(r).toEqual({
      processes: 2,
      home: { state: 'removed', detail: '/home/cloudroot' },
      sudoers: { state: 'removed', path: '/etc/sudoers.d/90-cloudroot' },
    });
    expect(removalNotes('cloudroot', r!)).toEqual([
      'removed user cloudroot',
      'removed its home /home/cloudroot (authorized_keys with it)',
      'removed /etc/sudoers.d/90-cloudroot',
      'ended 2 process(es) of its other sessions',
    ]);
    const kept = parseRemovalOutput(ok.replace('home=removed:/home/cloudroot', 'home=kept:/srv/shared is shared with another user'))!;
    expect(kept.home).toEqual({ state: 'kept', detail: '/srv/shared is shared with another user' });
    expect(removalNotes('cloudroot', kept)).toContain('kept its home: /srv/shared is shared with another user');
  });

  it('is undefined unless the script finished with the user gone', () => {
    expect(parseRemovalOutput(ok.replace('remove-cloudroot-ok', ''))).toBeUndefined();
    expect(parseRemovalOutput(ok.replace('user=removed', 'user=present'))).toBeUndefined();
    expect(parseRemovalOutput('')).toBeUndefined();
  });
});
