import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fleetExitCode, progressLine, type FleetView } from './fleets';
import { main, type Io } from './main';

const view = (counts: Record<string, number>, state = 'running'): FleetView => ({ id: 'web', state, total: 12, counts, failures: counts.failed ? { HostUnreachable: counts.failed } : {}, active: counts.probing ?? 0, concurrency: 6 });

describe('fleets CLI', () => {
  it('progress line: a bar of settled hosts, the counts that matter, named failures', () => {
    expect(progressLine(view({ healthy: 3, probing: 3, pending: 6 }))).toBe(`[${'#'.repeat(8)}${'·'.repeat(22)}] 3/12 healthy · 3 onboarding · 6 pending — running`);
    const done = view({ healthy: 9, 'needs-credentials': 2, failed: 1 }, 'settled');
    expect(progressLine(done)).toBe(`[${'#'.repeat(30)}] 9/12 healthy · 2 needs-credentials · 1 failed (HostUnreachable×1) — settled`);
    expect(fleetExitCode(done)).toBe(1);
    expect(fleetExitCode(view({ healthy: 10, 'needs-credentials': 2 }, 'settled'))).toBe(2);
    expect(fleetExitCode(view({ healthy: 12 }, 'settled'))).toBe(0);
  });

  it('fleets add -f FILE --password-stdin --wait: the secret from stdin into the defaults, then watches until settled', async () => {
    const seen: { method: string; url: string; body?: any }[] = [];
    const states = [view({ healthy: 2, probing: 10 }), view({ healthy: 12 }, 'settled')];
    const server: Server = createServer(async (req, res) => {
      let raw = '';
      for await (const c of req) raw += c;
      seen.push({ method: req.method!, url: req.url!, body: raw ? JSON.parse(raw) : undefined });
      res.setHeader('content-type', 'application/json');
      if (req.method === 'POST') return res.end(JSON.stringify({ id: 'web', workflowId: 'fleet/web', hosts: 12 }));
      res.end(JSON.stringify(states.length > 1 ? states.shift() : states[0]));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const dir = mkdtempSync(path.join(tmpdir(), 'fleet-cli-'));
    const file = path.join(dir, 'fleet.yml');
    writeFileSync(file, 'name: web\ndefaults:\n  username: admin\nhosts:\n  - address: 10.0.0.1\n');
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { stdin: Readable.from([Buffer.from('s3cret\n')]), stdout: { write: (s: string) => out.push(s), isTTY: false }, stderr: { write: (s: string) => err.push(s) }, env: { AO_API_URL: `http://127.0.0.1:${(server.address() as { port: number }).port}` } };
    try {
      const code = await main(['fleets', 'add', '-f', file, '--password-stdin', '--wait'], io);
      expect(code).toBe(0);
      expect(seen[0]).toEqual({ method: 'POST', url: '/v1/fleets', body: { name: 'web', defaults: { username: 'admin', password: 's3cret' }, hosts: [{ address: '10.0.0.1' }] } });
      expect(out.join('')).toContain('12/12 healthy');
      expect(out.join('') + err.join('')).not.toContain('s3cret');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('usage errors: retry --user without a secret, unknown subcommand', async () => {
    const err: string[] = [];
    const io: Io = { stdin: Readable.from([]), stdout: { write: () => true }, stderr: { write: (s: string) => err.push(s) }, env: {} };
    expect(await main(['fleets', 'retry', 'web', '--user', 'root'], io)).toBe(64);
    expect(err.join('')).toContain('--user goes with --password-stdin or --key-file');
    expect(await main(['fleets', 'frobnicate'], io)).toBe(64);
  });
});
