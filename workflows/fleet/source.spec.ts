import { sourceProblem } from './source';

describe('sourceProblem', () => {
  it('accepts the three kinds', () => {
    expect(sourceProblem({ kind: 'ansible-inventory', path: '/srv/inventory/hosts.ini' })).toBeNull();
    expect(sourceProblem({ kind: 'ansible-inventory', path: '/srv/inventory/hosts.yml', group: 'web-prod' })).toBeNull();
    expect(sourceProblem({ kind: 'file', path: '/srv/inventory/fleet hosts.json' })).toBeNull();
    expect(sourceProblem({ kind: 'http', url: 'https://cmdb.example.com/api/hosts?fleet=a' })).toBeNull();
  });

  it.each([
    [null, /source object/],
    [[], /source object/],
    [{ kind: 'script', path: '/x' }, /kind must be one of/],
    [{ kind: 'file', path: '/x', group: 'web' }, /unknown field\(s\) for kind file: group/],
    [{ kind: 'file', path: '/x', password: 'p' }, /unknown field\(s\)/],
    [{ kind: 'file' }, /path must be a string/],
    [{ kind: 'file', path: 'relative/hosts.yml' }, /absolute/],
    [{ kind: 'file', path: '/srv/inventory/../../etc/passwd' }, /\.\. segments/],
    [{ kind: 'file', path: '/srv/./hosts' }, /\.\. segments/],
    [{ kind: 'file', path: '/srv/hosts\u0000.yml' }, /control characters/],
    [{ kind: 'file', path: '/srv/hosts\n.yml' }, /control characters/],
    [{ kind: 'file', path: '/srv/{{ x }}.yml' }, /template syntax/],
    [{ kind: 'ansible-inventory', path: '/srv/$HOME/hosts' }, /\$, ~, commas/],
    [{ kind: 'ansible-inventory', path: '/srv/a,b' }, /\$, ~, commas/],
    [{ kind: 'ansible-inventory', path: '/srv/`id`' }, /\$, ~, commas/],
    [{ kind: 'file', path: `/${'a'.repeat(1100)}` }, /1 to 1024/],
    [{ kind: 'ansible-inventory', path: '/srv/h', group: 'web;id' }, /group must match/],
    [{ kind: 'ansible-inventory', path: '/srv/h', group: '' }, /group must match/],
    [{ kind: 'ansible-inventory', path: '/srv/h', group: 7 }, /group must match/],
    [{ kind: 'http', url: 'ftp://x/y' }, /http\(s\) URL/],
    [{ kind: 'http', url: 'file:///etc/passwd' }, /http\(s\) URL/],
    [{ kind: 'http', url: 'https://user:pw@cmdb.example.com/hosts' }, /credentials/],
    [{ kind: 'http', url: 'https://cmdb.example.com/{{x}}' }, /template syntax/],
    [{ kind: 'http', url: 'https://cmdb.example.com/a b' }, /whitespace/],
    [{ kind: 'http', url: 'https://cmdb.example.com/inv/../admin' }, /dot segments/],
    [{ kind: 'http', url: 'https://cmdb.example.com/inv/%2e%2e/admin' }, /dot segments/],
    [{ kind: 'http', url: 'https://cmdb.example.com/inv%2Fadmin' }, /dot segments/],
    [{ kind: 'http', url: `https://cmdb.example.com/${'a'.repeat(2100)}` }, /2048/],
  ])('refuses %j', (source, why) => {
    expect(sourceProblem(source)).toMatch(why);
  });
});
