import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../../lib/logging';
import { describeAnsibleError, hostsFromAnsibleList } from './ansible-inventory';
import { readInventory } from './read-inventory';

// Real ansible-inventory (ansible-core) on inventories written to a temp dir.

const SECRETS = ['hunter2-ssh-pass', 'become-me-secret', 'vault-pass-xyz', 'conn-pass-777', '/keys/web1_id_ed25519'];

function recordingLog(lines: string[]): Logger {
  const log: Logger = {
    debug: (m, f) => void lines.push(m + JSON.stringify(f ?? {})),
    info: (m, f) => void lines.push(m + JSON.stringify(f ?? {})),
    warn: (m, f) => void lines.push(m + JSON.stringify(f ?? {})),
    error: (m, f) => void lines.push(m + JSON.stringify(f ?? {})),
    child: () => log,
  };
  return log;
}

const INI = `
[web]
web1 ansible_host=10.0.0.11 ansible_port=2222 ansible_user=ops ansible_password=hunter2-ssh-pass ansible_ssh_private_key_file=/keys/web1_id_ed25519
web2 ansible_host=web2.example.com ao_host_id=web-2 ao_labels='{"role": "web", "tier": "front"}' ao_data_path=direct
web[3:4].example.com

[db]
db1 ansible_host=10.0.0.21 ansible_ssh_pass=conn-pass-777

[prod:children]
web
db

[prod:vars]
ansible_become_pass=become-me-secret

[staging]
stage1 ansible_host=10.9.0.1
`;

const YAML = `
all:
  vars:
    ansible_become_password: vault-pass-xyz
  children:
    prod:
      vars:
        ao_labels: {env: prod}
      children:
        web:
          hosts:
            web1:
              ansible_host: 10.0.0.11
              ansible_port: 2222
              ansible_password: hunter2-ssh-pass
            web2:
              ansible_host: !unsafe 'web2.example.com'
              ao_labels: {role: !unsafe 'web'}
        db:
          hosts:
            db1:
              ansible_host: 10.0.0.21
              ao_labels:
                role: !vault |
                  $ANSIBLE_VAULT;1.1;AES256
                  6162636465
    staging:
      hosts:
        stage1: {ansible_host: 10.9.0.1, ansible_user: deploy}
`;

/** One hostile value per field (and per kind of injection); `ok` stays to show the rest is read. */
const HOSTILE_INI = `
[fleet]
ok ansible_host=10.1.0.1
h-shell ansible_host='$(id)'
h-tick ansible_host='\`id\`'
h-semi ansible_host='10.1.0.3;reboot'
h-jinja ansible_host="{{ lookup('pipe','touch PWNED') }}"
h-block ansible_host=10.1.0.5 ao_labels='{"role": "{% for x in y %}"}'
h-toml ansible_host=10.1.0.6 ao_labels='{"role": "a\\" ]\\n[outputs"}'
h-nl ansible_host=10.1.0.7 ao_host_id='a\\nb'
h-user ansible_host=10.1.0.8 ansible_user='root;id'
h-port ansible_host=10.1.0.9 ansible_port='22 -oProxyCommand=id'
h-path ansible_host=10.1.0.10 ao_data_path='$(id)'
h-list ansible_host=10.1.0.11 ao_labels='["a"]'
h-key ansible_host=10.1.0.12 ao_labels='{"$(id)": "x"}'
`;

describe('readInventory: Ansible inventories (real ansible-inventory)', () => {
  let dir: string;
  let lines: string[];
  let read: ReturnType<typeof readInventory>;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ao-inv-spec-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    lines = [];
    read = readInventory({ inventory: { dirs: [dir], urlPrefixes: [] }, log: recordingLog(lines) });
  });

  async function write(name: string, text: string, mode = 0o644): Promise<string> {
    const p = path.join(dir, name);
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, text, { mode });
    await chmod(p, mode);
    return p;
  }

  function expectNoSecrets(value: unknown) {
    const text = JSON.stringify(value) + lines.join('\n');
    for (const s of SECRETS) expect(text).not.toContain(s);
  }

  it('INI: every host with ansible_host/port/user, ao_* vars and ranges; secrets appear nowhere', async () => {
    const r = await read({ kind: 'ansible-inventory', path: await write('hosts.ini', INI) });
    expect(r.ignored).toEqual([]);
    expect(r.hosts).toEqual([
      { address: '10.0.0.11', port: 2222, username: 'ops' },
      { address: '10.0.0.21' },
      { address: '10.9.0.1' },
      { address: 'web2.example.com', hostId: 'web-2', labels: { role: 'web', tier: 'front' }, dataPath: 'direct' },
      { address: 'web3.example.com' },
      { address: 'web4.example.com' },
    ]);
    expectNoSecrets(r);
  });

  it('INI: `group` reads that group and its children, recursively', async () => {
    const p = await write('hosts.ini', INI);
    const prod = await read({ kind: 'ansible-inventory', path: p, group: 'prod' });
    expect(prod.hosts.map((h) => h.address)).toEqual(['10.0.0.11', '10.0.0.21', 'web2.example.com', 'web3.example.com', 'web4.example.com']);
    const db = await read({ kind: 'ansible-inventory', path: p, group: 'db' });
    expect(db.hosts).toEqual([{ address: '10.0.0.21' }]);
    const staging = await read({ kind: 'ansible-inventory', path: p, group: 'staging' });
    expect(staging.hosts).toEqual([{ address: '10.9.0.1' }]);
    expect(prod.digest).not.toBe(db.digest);
    expectNoSecrets([prod, db, staging]);
  });

  it('YAML: nested children, group vars, !unsafe text; a vaulted value is ignored, never decrypted', async () => {
    const p = await write('yaml/hosts.yml', YAML);
    const r = await read({ kind: 'ansible-inventory', path: p });
    expect(r.hosts).toEqual([
      { address: '10.0.0.11', port: 2222, labels: { env: 'prod' } },
      { address: '10.9.0.1', username: 'deploy' },
      { address: 'web2.example.com', labels: { role: 'web' } },
    ]);
    expect(r.ignored).toEqual([{ name: 'db1', why: 'ao_labels vault-encrypted (inventory sources are read without a vault password)' }]);
    const web = await read({ kind: 'ansible-inventory', path: p, group: 'web' });
    expect(web.hosts.map((h) => h.address)).toEqual(['10.0.0.11', 'web2.example.com']);
    expectNoSecrets([r, web]);
  });

  it('group_vars/ beside the inventory apply; the same hosts read twice have the same digest', async () => {
    const p = await write('gv/hosts.ini', '[web]\nw1 ansible_host=10.2.0.1\n');
    await write('gv/group_vars/web.yml', 'ao_labels: {team: blue}\nansible_password: hunter2-ssh-pass\n');
    const one = await read({ kind: 'ansible-inventory', path: p });
    const two = await read({ kind: 'ansible-inventory', path: p });
    expect(one.hosts).toEqual([{ address: '10.2.0.1', labels: { team: 'blue' } }]);
    expect(two.digest).toBe(one.digest);
    expectNoSecrets(one);
  });

  it('hostile values in every field are ignored with a reason; the inventory is never templated', async () => {
    const marker = path.join(dir, 'TEMPLATED');
    const r = await read({ kind: 'ansible-inventory', path: await write('hostile.ini', HOSTILE_INI.replace('PWNED', marker)) });
    expect(r.hosts).toEqual([{ address: '10.1.0.1' }]);
    const why = Object.fromEntries(r.ignored.map((i) => [i.name, i.why]));
    expect(why).toEqual({
      'h-shell': 'ansible_host (or the inventory name) must be an IP address or a DNS name',
      'h-tick': 'ansible_host (or the inventory name) must be an IP address or a DNS name',
      'h-semi': 'ansible_host (or the inventory name) must be an IP address or a DNS name',
      'h-jinja': 'ansible_host (or the inventory name) must be an IP address or a DNS name',
      'h-block': expect.stringMatching(/^ao_labels entry #1: value must not contain template syntax/),
      'h-toml': expect.stringMatching(/^ao_labels entry #1: value must match/),
      'h-nl': expect.stringMatching(/^ao_host_id must match/),
      'h-user': expect.stringMatching(/^ansible_user must match/),
      'h-port': 'ansible_port must be an integer from 1 to 65535',
      'h-path': 'ao_data_path must be one of direct, tunnel, proxy',
      'h-list': 'ao_labels must be a map of strings',
      'h-key': expect.stringMatching(/^ao_labels entry #1: key must match/),
    });
    for (const i of r.ignored) expect(i.why).not.toMatch(/\$\(id\)|`id`|reboot|lookup|\{% for/);
    await expect(stat(marker)).rejects.toThrow(/ENOENT/);
  });

  it('an inventory name with unsafe characters is not shown', () => {
    const hosts = hostsFromAnsibleList({ _meta: { hostvars: {} }, all: { children: ['ungrouped'] }, ungrouped: { hosts: ['$(id)'] } });
    expect(hosts).toEqual([expect.objectContaining({ name: 'host #1 (name not shown: unsafe characters)', address: '$(id)' })]);
  });

  it('an executable inventory (a script) is refused and never run', async () => {
    const marker = path.join(dir, 'RAN');
    const script = `#!/bin/sh\ntouch ${marker}\necho '{"all": {"hosts": ["evil"]}}'\n`;
    const p = await write('script.sh', script, 0o755);
    await expect(read({ kind: 'ansible-inventory', path: p })).rejects.toMatchObject({ type: 'InvalidInput', nonRetryable: true, message: expect.stringMatching(/executable/) });
    // Not executable, it is just text that no static plugin reads: unreadable, still not run.
    await chmod(p, 0o644);
    await expect(read({ kind: 'ansible-inventory', path: p })).rejects.toMatchObject({ type: 'InventoryUnreadable', nonRetryable: true });
    await expect(stat(marker)).rejects.toThrow(/ENOENT/);
  });

  it('a directory is refused', async () => {
    await mkdir(path.join(dir, 'adir'), { recursive: true });
    await expect(read({ kind: 'ansible-inventory', path: path.join(dir, 'adir') })).rejects.toMatchObject({ type: 'InvalidInput' });
  });

  it('a plugin inventory (code) is not read', async () => {
    const p = await write('constructed.yml', 'plugin: ansible.builtin.constructed\nstrict: false\n');
    await expect(read({ kind: 'ansible-inventory', path: p })).rejects.toMatchObject({ type: 'InventoryUnreadable', nonRetryable: true });
  });

  it('a malformed inventory is InventoryUnreadable, and the message does not quote its lines', async () => {
    const p = await write('broken.ini', '[web]\nweb1 ansible_password=hunter2-ssh-pass "unclosed\n');
    const err = await read({ kind: 'ansible-inventory', path: p }).catch((e: Error) => e);
    expect(err).toMatchObject({ type: 'InventoryUnreadable', nonRetryable: true, message: expect.stringMatching(/Completely failed to parse .*ini plugin: line 2/) });
    expectNoSecrets((err as Error).message);
  });

  it('an unknown group fails the read; an empty group reads as no hosts', async () => {
    const p = await write('groups.ini', '[web]\nw1\n[empty]\n[parent:children]\nempty\n');
    await expect(read({ kind: 'ansible-inventory', path: p, group: 'wbe' })).rejects.toMatchObject({ type: 'InventoryUnreadable', message: 'group wbe is not in the inventory' });
    expect((await read({ kind: 'ansible-inventory', path: p, group: 'empty' })).hosts).toEqual([]);
    expect((await read({ kind: 'ansible-inventory', path: p, group: 'parent' })).hosts).toEqual([]);
  });

  it('a hung ansible-inventory is stopped at its timeout (retryable)', async () => {
    const fake = await write('bin/ansible-inventory', '#!/bin/sh\nexec sleep 30\n', 0o755);
    const slow = readInventory({ inventory: { dirs: [dir], urlPrefixes: [] }, log: recordingLog(lines), ansible: { bin: fake, timeoutMs: 300 } });
    const started = Date.now();
    await expect(slow({ kind: 'ansible-inventory', path: await write('hosts.ini', INI) })).rejects.toMatchObject({ type: 'InventoryUnreadable', nonRetryable: false });
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('describeAnsibleError', () => {
  it('keeps the plugin, the line and the error, not the quoted text', () => {
    const stderr = `[WARNING]:  * Failed to parse /inv/h.ini with ini plugin:
/inv/h.ini:3: Error parsing host definition 'web1
ansible_password=s3cret "x': No closing quotation
ERROR! Completely failed to parse inventory source /inv/h.ini`;
    const d = describeAnsibleError(stderr);
    expect(d).toBe('Completely failed to parse inventory source /inv/h.ini (ini plugin: line 3)');
    expect(describeAnsibleError("ERROR! Bad value 'vault_password=abc' and token: xyz")).toBe("Bad value '…' and token=[redacted]");
  });
});
