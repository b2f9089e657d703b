import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../../lib/logging';
import type { FleetSource } from '../../workflows/fleet/source';
import { resolveAllowedPath, urlAllowed } from './allowlist';
import { readHostFile } from './file-source';
import { createInventoryActivities } from './index';
import { readInventory, type ReadInventoryDeps } from './read-inventory';

const log = createLogger('test');
const HOSTS = { hosts: [{ address: '10.3.0.1', port: 2201, hostId: 'a-1', labels: { role: 'web' } }, { address: 'b.example.com', dataPath: 'proxy' }] };
const EXPECTED = [
  { address: '10.3.0.1', port: 2201, hostId: 'a-1', labels: { role: 'web' } },
  { address: 'b.example.com', dataPath: 'proxy' },
];

let root: string;
let allowed: string;
let outside: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'ao-inv-read-'));
  allowed = path.join(root, 'inv');
  outside = path.join(root, 'outside');
  await mkdir(allowed);
  await mkdir(outside);
  await mkdir(path.join(root, 'inv-other'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function reader(extra: Partial<ReadInventoryDeps> = {}) {
  return readInventory({ inventory: { dirs: [allowed], urlPrefixes: [] }, log, ...extra });
}

describe('readInventory: the allowlist', () => {
  it('without AO_INVENTORY_DIRS / AO_INVENTORY_URLS no source is read', async () => {
    const { readInventory: read } = createInventoryActivities({ log });
    await writeFile(path.join(allowed, 'hosts.json'), JSON.stringify(HOSTS));
    await expect(read({ kind: 'file', path: path.join(allowed, 'hosts.json') })).rejects.toMatchObject({ type: 'InvalidInput', nonRetryable: true, message: expect.stringMatching(/AO_INVENTORY_DIRS is empty/) });
    await expect(read({ kind: 'http', url: 'http://127.0.0.1:1/x' })).rejects.toMatchObject({ type: 'InvalidInput', message: expect.stringMatching(/AO_INVENTORY_URLS is empty/) });
  });

  it('a malformed source is InvalidInput', async () => {
    await expect(reader()({ kind: 'file', path: 'inv/hosts.json' })).rejects.toMatchObject({ type: 'InvalidInput', nonRetryable: true, message: expect.stringMatching(/absolute/) });
    await expect(reader()({ kind: 'nope' } as unknown as FleetSource)).rejects.toMatchObject({ type: 'InvalidInput' });
  });

  it('refuses path traversal, sibling directories and symlinks that lead out', async () => {
    await writeFile(path.join(outside, 'hosts.json'), JSON.stringify(HOSTS));
    await writeFile(path.join(root, 'inv-other', 'hosts.json'), JSON.stringify(HOSTS));
    await symlink(path.join(outside, 'hosts.json'), path.join(allowed, 'escape.json'));
    await symlink(outside, path.join(allowed, 'escape-dir'));
    const read = reader();
    await expect(read({ kind: 'file', path: `${allowed}/../outside/hosts.json` })).rejects.toMatchObject({ type: 'InvalidInput', message: expect.stringMatching(/\.\. segments/) });
    const config = { dirs: [allowed], urlPrefixes: [] };
    await expect(resolveAllowedPath(`${allowed}/../outside/hosts.json`, config)).rejects.toMatchObject({ type: 'InvalidInput', message: expect.stringMatching(/outside the allowed directories/) });
    await expect(resolveAllowedPath(allowed, config)).rejects.toMatchObject({ type: 'InvalidInput' });
    for (const p of [path.join(root, 'inv-other', 'hosts.json'), '/etc/passwd']) {
      await expect(read({ kind: 'file', path: p })).rejects.toMatchObject({ type: 'InvalidInput', message: expect.stringMatching(/outside the allowed directories/) });
    }
    for (const p of [path.join(allowed, 'escape.json'), path.join(allowed, 'escape-dir', 'hosts.json')]) {
      await expect(read({ kind: 'file', path: p })).rejects.toMatchObject({ type: 'InvalidInput', message: expect.stringMatching(/leads outside/) });
      await expect(read({ kind: 'ansible-inventory', path: p })).rejects.toMatchObject({ type: 'InvalidInput', message: expect.stringMatching(/leads outside/) });
    }
  });

  it('follows symlinks that stay inside, and an allowed directory that is itself a symlink', async () => {
    await mkdir(path.join(allowed, 'real'), { recursive: true });
    await writeFile(path.join(allowed, 'real', 'hosts.json'), JSON.stringify(HOSTS));
    await symlink(path.join(allowed, 'real', 'hosts.json'), path.join(allowed, 'current.json'));
    await symlink(allowed, path.join(root, 'inv-link'));
    expect((await reader()({ kind: 'file', path: path.join(allowed, 'current.json') })).hosts).toEqual(EXPECTED);
    const viaLink = readInventory({ inventory: { dirs: [path.join(root, 'inv-link')], urlPrefixes: [] }, log });
    expect((await viaLink({ kind: 'file', path: path.join(root, 'inv-link', 'real', 'hosts.json') })).hosts).toEqual(EXPECTED);
  });

  it('a missing file inside is InventoryUnreadable (it may appear by the next pass)', async () => {
    await expect(reader()({ kind: 'file', path: path.join(allowed, 'nope.yml') })).rejects.toMatchObject({ type: 'InventoryUnreadable', nonRetryable: true });
  });
});

describe('urlAllowed', () => {
  const prefixes = ['https://cmdb.example.com/api/inventory', 'http://10.0.0.5:8080/'];
  it.each([
    ['https://cmdb.example.com/api/inventory', true],
    ['https://cmdb.example.com/api/inventory/fleet-a.json?x=1', true],
    ['http://10.0.0.5:8080/anything', true],
    ['https://cmdb.example.com/api/inventory-admin', false],
    ['https://cmdb.example.com/api/inventory/../admin', false], // the URL parser resolves it to /api/admin
    ['https://cmdb.example.com/api/inventory/%2e%2e/admin', false],
    ['https://cmdb.example.com/api/inventory/a%2Fb', false],
    ['https://cmdb.example.com.evil.net/api/inventory', false],
    ['http://cmdb.example.com/api/inventory', false],
    ['https://cmdb.example.com:8443/api/inventory', false],
    ['https://u:p@cmdb.example.com/api/inventory', false],
    ['http://10.0.0.5:8081/', false],
  ])('%s → %s', (url, ok) => expect(urlAllowed(new URL(url), prefixes)).toBe(ok));
});

describe('readInventory: files', () => {
  it('reads JSON (object or bare array) and YAML in the same way', async () => {
    await writeFile(path.join(allowed, 'a.json'), JSON.stringify(HOSTS));
    await writeFile(path.join(allowed, 'b.json'), JSON.stringify(HOSTS.hosts));
    await writeFile(path.join(allowed, 'c.yaml'), 'hosts:\n  - {address: 10.3.0.1, port: 2201, hostId: a-1, labels: {role: web}}\n  - address: b.example.com\n    dataPath: proxy\n');
    const read = reader({ now: () => 42 });
    const results = await Promise.all(['a.json', 'b.json', 'c.yaml'].map((f) => read({ kind: 'file', path: path.join(allowed, f) })));
    for (const r of results) expect(r).toEqual({ hosts: EXPECTED, ignored: [], readAtMs: 42, digest: results[0].digest });
  });

  it('an entry with fields a source never gives (credentials, typos) is left out with the reason', async () => {
    const p = path.join(allowed, 'creds.json');
    await writeFile(p, JSON.stringify([{ address: '10.3.0.9', password: 'hunter2-file-pass' }, { address: '10.3.0.10', hostID: 'x' }, 'nope', { address: '10.3.0.11' }]));
    const r = await reader()({ kind: 'file', path: p });
    expect(r.hosts).toEqual([{ address: '10.3.0.11' }]);
    expect(r.ignored).toEqual([
      { name: 'hosts[0] 10.3.0.9', why: 'unknown field(s): password (credentials never come from a source)' },
      { name: 'hosts[1] 10.3.0.10', why: 'unknown field(s): hostID (credentials never come from a source)' },
      { name: 'hosts[2]', why: 'an entry must be an object' },
    ]);
    expect(JSON.stringify(r)).not.toContain('hunter2-file-pass');
  });

  it.each([
    ['tag.yml', 'hosts:\n  - address: !!js/function "function () { return 1 }"\n', /not valid YAML/],
    ['custom.yml', 'hosts:\n  - address: !ruby/object x\n', /not valid YAML/],
    ['dup.yml', 'hosts: []\nhosts: []\n', /not valid YAML/],
    ['two-docs.yml', 'hosts: []\n---\nhosts: []\n', /not valid YAML/],
    ['bad.json', '{"hosts": [', /not valid JSON/],
    ['shape.json', '{"hosts": {"a": 1}}', /must hold/],
    ['extra.json', '{"hosts": [], "password": "x"}', /must hold/],
    ['scalar.yml', 'just text\n', /must hold/],
  ])('%s is InventoryUnreadable', async (name, text, why) => {
    await writeFile(path.join(allowed, name), text);
    await expect(reader()({ kind: 'file', path: path.join(allowed, name) })).rejects.toMatchObject({ type: 'InventoryUnreadable', nonRetryable: true, message: expect.stringMatching(why) });
  });

  it('the parse error says where, not what the line holds', async () => {
    await writeFile(path.join(allowed, 'leak.yml'), 'hosts:\n  - address: 10.0.0.1\n    password: "s3cret-in-yaml\n');
    const err = await reader()({ kind: 'file', path: path.join(allowed, 'leak.yml') }).catch((e: Error) => e);
    expect(err).toMatchObject({ type: 'InventoryUnreadable' });
    expect((err as Error).message).not.toContain('s3cret');
  });

  it('refuses files over the size limit and special files (a FIFO would hang the read)', async () => {
    const big = path.join(allowed, 'big.json');
    await writeFile(big, JSON.stringify({ hosts: Array.from({ length: 200 }, (_, i) => ({ address: `10.4.0.${i}` })) }));
    await expect(readHostFile(big, 1024)).rejects.toMatchObject({ type: 'InventoryUnreadable', message: expect.stringMatching(/larger than 1024 bytes/) });
    const fifo = path.join(allowed, 'fifo.json');
    execFileSync('mkfifo', [fifo]);
    await expect(reader()({ kind: 'file', path: fifo })).rejects.toMatchObject({ type: 'InventoryUnreadable', message: expect.stringMatching(/not a regular file/) });
  });
});

describe('readInventory: HTTP (a local server on 127.0.0.1)', () => {
  let server: http.Server;
  let base: string;
  const hits: string[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      hits.push(req.url ?? '');
      const json = (status: number, body: unknown, type = 'application/json') => {
        res.writeHead(status, { 'content-type': type });
        res.end(typeof body === 'string' ? body : JSON.stringify(body));
      };
      const port = (server.address() as AddressInfo).port;
      switch (req.url) {
        case '/inv/ok':
          return json(200, HOSTS, 'application/json; charset=utf-8');
        case '/inv/array':
          return json(200, HOSTS.hosts, 'application/vnd.cmdb+json');
        case '/inv/500':
          return json(500, { error: 'boom' });
        case '/inv/503':
          return json(503, 'unavailable', 'text/plain');
        case '/inv/429':
          return json(429, {});
        case '/inv/404':
          return json(404, {});
        case '/inv/text':
          return json(200, JSON.stringify(HOSTS), 'text/plain');
        case '/inv/html':
          return json(200, '<html></html>', 'text/html');
        case '/inv/badjson':
          return json(200, '{"hosts": [');
        case '/inv/big': {
          // No content-length: only counting the body stops it.
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"hosts": [');
          const chunk = Array.from({ length: 500 }, () => '{"address": "10.5.0.1"},').join('');
          for (let i = 0; i < 20; i++) res.write(chunk);
          return res.end('{"address": "10.5.0.2"}]}');
        }
        case '/inv/biglen':
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(10 * 1024 * 1024) });
          return res.write('{"hosts": [');
        case '/inv/slow':
          return; // never answers
        case '/inv/slowbody':
          res.writeHead(200, { 'content-type': 'application/json' });
          return res.write('{"hosts": [');
        case '/inv/redir-same':
          res.writeHead(302, { location: '/inv/ok' });
          return res.end();
        case '/inv/redir-other':
          res.writeHead(302, { location: `http://localhost:${port}/inv/ok` });
          return res.end();
        case '/inv/redir-out':
          res.writeHead(301, { location: '/admin/hosts' });
          return res.end();
        case '/inv/redir-loop':
          res.writeHead(302, { location: '/inv/redir-loop' });
          return res.end();
        default:
          return json(404, {});
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  // A generous timeout (a loaded CI box answers a local request slowly too); the timeout test sets a short one.
  function fetcher(timeoutMs = 10_000) {
    return readInventory({ inventory: { dirs: [], urlPrefixes: [`${base}/inv/`] }, log, http: { timeoutMs, maxBytes: 64 * 1024 } });
  }

  it('reads JSON hosts (object or array, any +json type)', async () => {
    const read = fetcher();
    const a = await read({ kind: 'http', url: `${base}/inv/ok` });
    expect(a.hosts).toEqual(EXPECTED);
    expect(a.ignored).toEqual([]);
    expect((await read({ kind: 'http', url: `${base}/inv/array` })).digest).toBe(a.digest);
  });

  it('5xx and 429 are retryable, 4xx final', async () => {
    const read = fetcher();
    for (const p of ['500', '503', '429']) {
      await expect(read({ kind: 'http', url: `${base}/inv/${p}` })).rejects.toMatchObject({ type: 'InventoryUnreadable', nonRetryable: false, message: expect.stringContaining(`HTTP ${p}`) });
    }
    await expect(read({ kind: 'http', url: `${base}/inv/404` })).rejects.toMatchObject({ type: 'InventoryUnreadable', nonRetryable: true });
  });

  it('refuses a wrong content type and a body that is not JSON', async () => {
    const read = fetcher();
    for (const p of ['text', 'html']) {
      await expect(read({ kind: 'http', url: `${base}/inv/${p}` })).rejects.toMatchObject({ type: 'InventoryUnreadable', nonRetryable: true, message: expect.stringMatching(/content-type/) });
    }
    await expect(read({ kind: 'http', url: `${base}/inv/badjson` })).rejects.toMatchObject({ type: 'InventoryUnreadable', message: expect.stringMatching(/not valid JSON/) });
  });

  it('refuses an oversize body, announced or not', async () => {
    const read = fetcher();
    for (const p of ['big', 'biglen']) {
      await expect(read({ kind: 'http', url: `${base}/inv/${p}` })).rejects.toMatchObject({ type: 'InventoryUnreadable', nonRetryable: true, message: expect.stringMatching(/larger than 65536 bytes/) });
    }
  });

  it('a server that does not answer, or stalls mid-body, times out (retryable)', async () => {
    const read = fetcher(500);
    for (const p of ['slow', 'slowbody']) {
      await expect(read({ kind: 'http', url: `${base}/inv/${p}` })).rejects.toMatchObject({ type: 'InventoryUnreadable', nonRetryable: false, message: expect.stringMatching(/within 500 ms/) });
    }
  });

  it('an unreachable server is retryable', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const read = readInventory({ inventory: { dirs: [], urlPrefixes: [`http://127.0.0.1:${port}/`] }, log });
    await expect(read({ kind: 'http', url: `http://127.0.0.1:${port}/inv` })).rejects.toMatchObject({ type: 'InventoryUnreadable', nonRetryable: false, message: expect.stringMatching(/ECONNREFUSED/) });
  });

  it('follows redirects only within the origin and the allowlist', async () => {
    const read = fetcher();
    expect((await read({ kind: 'http', url: `${base}/inv/redir-same` })).hosts).toEqual(EXPECTED);
    hits.length = 0;
    await expect(read({ kind: 'http', url: `${base}/inv/redir-other` })).rejects.toMatchObject({ type: 'InventoryUnreadable', nonRetryable: true, message: expect.stringMatching(/another origin/) });
    await expect(read({ kind: 'http', url: `${base}/inv/redir-out` })).rejects.toMatchObject({ type: 'InventoryUnreadable', message: expect.stringMatching(/outside the allowed URL prefixes/) });
    await expect(read({ kind: 'http', url: `${base}/inv/redir-loop` })).rejects.toMatchObject({ type: 'InventoryUnreadable', message: expect.stringMatching(/more than 3 times/) });
    expect(hits).not.toContain('/inv/ok');
    expect(hits).not.toContain('/admin/hosts');
  });

  it('a URL outside the prefixes is refused before any request', async () => {
    const read = fetcher();
    hits.length = 0;
    for (const url of [`${base}/admin/hosts`, `${base}/inv`, `${base}/invx/ok`, `http://localhost:${new URL(base).port}/inv/ok`]) {
      await expect(read({ kind: 'http', url })).rejects.toMatchObject({ type: 'InvalidInput', nonRetryable: true, message: expect.stringMatching(/outside the allowed URL prefixes/) });
    }
    expect(hits).toEqual([]);
  });
});
