import { execFileSync } from 'node:child_process';
import { FACTS_SCRIPT, parseFacts } from './probe';

describe('parseFacts', () => {
  it('reads the key=value report', () => {
    const { facts, kernel } = parseFacts(
      'kernel=Linux\nhostname=web-1\narch=x86_64\nos=debian\nos_version=12\npid1=sshd\npython3=3.11.2\ncpus=2\nmem_kib=2048000\nroot_kib=20971520\n',
    );
    expect(kernel).toBe('Linux');
    expect(facts).toEqual({
      hostname: 'web-1', os: 'debian', osVersion: '12', arch: 'x86_64', initSystem: 'none', python3: '3.11.2',
      cpus: 2, memoryMiB: 2000, diskRootGiB: 20,
    });
  });

  it('tells systemd, another init and no init apart', () => {
    expect(parseFacts('init=systemd\npid1=systemd\n').facts.initSystem).toBe('systemd');
    expect(parseFacts('pid1=init\n').facts.initSystem).toBe('other');
    expect(parseFacts('pid1=sshd\n').facts.initSystem).toBe('none');
  });

  it('reports a missing python3 as null', () => {
    expect(parseFacts('kernel=Linux\npython3=\n').facts.python3).toBeNull();
  });

  it('runs under a POSIX sh and yields this machine\'s facts', () => {
    const { facts, kernel } = parseFacts(execFileSync('sh', ['-s'], { input: FACTS_SCRIPT }).toString());
    expect(kernel).toBe('Linux');
    expect(facts.cpus).toBeGreaterThan(0);
    expect(facts.memoryMiB).toBeGreaterThan(0);
    expect(facts.arch).not.toBe('');
  });
});
