import { execFileSync } from 'node:child_process';
import { shellQuote } from './shell';

describe('shellQuote', () => {
  const samples = ['plain', '', "it's", `'"$()\`; & ü`, 'a b\tc\nd', '$(touch /tmp/x)', "''", '-n'];

  it.each(samples)('round-trips %j through sh', (s) => {
    const out = execFileSync('sh', ['-c', `printf '%s' ${shellQuote(s)}`]).toString('utf8');
    expect(out).toBe(s);
  });

  it('leaves safe words bare and quotes everything else', () => {
    expect(shellQuote('cloudroot')).toBe('cloudroot');
    expect(shellQuote('/etc/sudoers.d/90-x')).toBe('/etc/sudoers.d/90-x');
    expect(shellQuote("a'b")).toBe(`'a'\\''b'`);
  });
});
