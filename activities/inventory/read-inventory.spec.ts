import { chmodSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FailureType } from '../../workflows/contracts';
import { readInventory } from './read-inventory';

const root = mkdtempSync(path.join(tmpdir(), 'ao-inv-spec-'));
const allowed = path.join(root, 'allowed');
mkdirSync(allowed);
const config = { dirs: [allowed], urlPrefixes: ['http://127.0.0.1:'] };
const write = (name: string, text: string, dir = allowed) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};

async function failure(p: Promise<unknown>): Promise<{ type: string; message: string; nonRetryable: boolean }> {
  try {
    await p;
  } catch (e) {
    return e as never;
  }
  throw new Error('no failure');
}

describe('readInventory', () => {
  it('an INI inventory: groups and children, ansible_host/port/user, ao_* vars; secrets are never part of the read', async () => {
    const file = write('hosts.ini', [
      '[web]',
      'web1 ansible_host=10.0.0.1 ansible_port=2222 ansible_password=s3cret-ini ao_host_id=web-1',
      'web2 ansible_host=10.0.0.2',
      '[db]',
      'db1 ansible_host=10.0.1.1 ansible_user=admin ansible_become_pass=s3cret-become',
      '[prod:children]',
      'web',
      '',
    ].join('\n'));
    const all = await readInventory({ kind: 'ansible-inventory', path: file }, config);
    expect(all.hosts).toEqual([
      { address: '10.0.0.1', port: 2222, hostId: 'web-1' },
      { address: '10.0.0.2' },
      { address: '10.0.1.1', username: 'admin' },
    ]);
    expect(JSON.stringify(all)).not.toContain('s3cret');
    expect(all.digest).toMatch(/^[0-9a-f]{64}$/);
    const prod = await readInventory({ kind: 'ansible-inventory', path: file, group: 'prod' }, config);
    expect(prod.hosts.map((h) => h.address)).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('a YAML inventory with ao_labels; hostile values are ignored with a reason, never quoted', async () => {
    const file = write('hosts.yml', [
      'all:',
      '  hosts:',
      '    ok1: { ansible_host: 10.0.2.1, ao_labels: { team: db } }',
      '    bad1: { ansible_host: "$(touch /tmp/x)" }',
      '    bad2: { ansible_host: 10.0.2.3, ao_labels: { env: "{{ lookup(\'pipe\',\'id\') }}" } }',
      '    bad3: { ansible_host: 10.0.2.4, ansible_user: "root;id" }',
      '',
    ].join('\n'));
    const r = await readInventory({ kind: 'ansible-inventory', path: file }, config);
    expect(r.hosts).toEqual([{ address: '10.0.2.1', labels: { team: 'db' } }]);
    expect(r.ignored.map((i) => i.name).sort()).toEqual(['bad1', 'bad2', 'bad3']);
    expect(JSON.stringify(r.ignored)).not.toMatch(/touch|lookup|root;id/);
  });

  it('an executable inventory (a script), a path outside the allowlist and a symlink out are refused', async () => {
    const script = write('dyn.sh', '#!/bin/sh\necho \'{"all":{"hosts":["10.9.9.9"]}}\'\n');
    chmodSync(script, 0o755);
    expect(await failure(readInventory({ kind: 'ansible-inventory', path: script }, config))).toMatchObject({ type: FailureType.InvalidInput });
    const outside = write('out.ini', '[a]\n10.0.0.9\n', root);
    expect(await failure(readInventory({ kind: 'ansible-inventory', path: outside }, config))).toMatchObject({ type: FailureType.InvalidInput, message: expect.stringContaining('AO_INVENTORY_DIRS') });
    const link = path.join(allowed, 'link.ini');
    symlinkSync(outside, link);
    expect(await failure(readInventory({ kind: 'ansible-inventory', path: link }, config))).toMatchObject({ type: FailureType.InvalidInput });
    expect(await failure(readInventory({ kind: 'file', path: `${allowed}/../out.ini` }, config))).toMatchObject({ type: FailureType.InvalidInput });
    expect(await failure(readInventory({ kind: 'file', path: path.join(allowed, 'x.yml') }, { dirs: [], urlPrefixes: [] }))).toMatchObject({ type: FailureType.InvalidInput });
  });

  it('a hosts file (YAML or JSON): duplicates and entries with secrets or unknown fields are left out', async () => {
    const file = write('hosts.json', JSON.stringify({ hosts: [{ address: '10.0.3.1', port: 22 }, { address: '10.0.3.1' }, { address: '10.0.3.2', password: 'no' }, { address: 'web.example.internal', dataPath: 'tunnel', hostId: 'web' }, 'junk'] }));
    const r = await readInventory({ kind: 'file', path: file }, config);
    expect(r.hosts).toEqual([{ address: '10.0.3.1', port: 22 }, { address: 'web.example.internal', hostId: 'web', dataPath: 'tunnel' }]);
    expect(r.ignored.map((i) => i.why).join(' | ')).toMatch(/same address and port.*unknown field\(s\): password.*an entry must be an object/);
    const bad = write('bad.yml', 'hosts: [ {address: 10.0.0.1\n');
    expect(await failure(readInventory({ kind: 'file', path: bad }, config))).toMatchObject({ type: FailureType.InventoryUnreadable });
  });

  describe('HTTP', () => {
    let server: Server;
    let base = '';
    const answers: Record<string, (res: import('node:http').ServerResponse) => void> = {
      '/ok': (res) => res.setHeader('content-type', 'application/json').end(JSON.stringify([{ address: '10.0.4.1' }])),
      '/down': (res) => res.writeHead(503).end(),
      '/html': (res) => res.setHeader('content-type', 'text/html').end('<html>'),
      '/big': (res) => res.setHeader('content-type', 'application/json').end('[' + ' '.repeat(9 * 1024 * 1024) + ']'),
      '/redirect': (res) => res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' }).end(),
    };
    beforeAll(async () => {
      server = createServer((req, res) => (answers[req.url ?? ''] ?? ((r) => r.writeHead(404).end()))(res));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it('reads JSON; a 5xx is retryable; not JSON, too big, a redirect or another origin are refused', async () => {
      expect((await readInventory({ kind: 'http', url: `${base}/ok` }, config)).hosts).toEqual([{ address: '10.0.4.1' }]);
      expect(await failure(readInventory({ kind: 'http', url: `${base}/down` }, config))).toMatchObject({ type: FailureType.InventoryUnreadable, nonRetryable: false });
      expect(await failure(readInventory({ kind: 'http', url: `${base}/html` }, config))).toMatchObject({ type: FailureType.InventoryUnreadable, nonRetryable: true });
      expect(await failure(readInventory({ kind: 'http', url: `${base}/big` }, config))).toMatchObject({ type: FailureType.InventoryUnreadable });
      expect(await failure(readInventory({ kind: 'http', url: `${base}/redirect` }, config))).toMatchObject({ type: FailureType.InventoryUnreadable });
      expect(await failure(readInventory({ kind: 'http', url: 'http://10.255.255.1/hosts' }, config))).toMatchObject({ type: FailureType.InvalidInput });
    });
  });
});
