import { createServer, type IncomingMessage, type Server } from 'node:http';
import { Readable } from 'node:stream';
import { apiKeyEnv, loadApiConfig } from '../../lib/config';
import { Keyring } from '../../lib/keyring';
import { main, type Io } from './main';
import { changeLines, renderTable, type HostView } from './progress';

function memoryIo(stdinText = '', env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = {
    stdin: Readable.from([Buffer.from(stdinText)]),
    stdout: { write: (s: string) => out.push(s), isTTY: false },
    stderr: { write: (s: string) => err.push(s) },
    env,
  };
  return { io, out: () => out.join(''), err: () => err.join('') };
}

/** A scripted stand-in for the API: records requests, answers GET /v1/hosts/:id from a queue of states. */
async function fakeApi(states: HostView[], postStatus = 202, postBody: unknown = { id: 'web-1', workflowId: 'onboard/web-1', statusUrl: '/v1/hosts/web-1' }) {
  const seen: Array<{ method: string; url: string; auth?: string; body?: unknown }> = [];
  const server: Server = createServer(async (req: IncomingMessage, res) => {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body: raw ? JSON.parse(raw) : undefined });
    res.setHeader('Content-Type', 'application/json');
    if (req.method === 'POST' || req.method === 'PATCH') {
      res.statusCode = postStatus;
      return res.end(JSON.stringify(postBody));
    }
    res.end(JSON.stringify(states.length > 1 ? states.shift() : states[0]));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { url, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const t0 = 1_700_000_000_000;
const probing: HostView = { id: 'web-1', phase: 'probing', workflowStatus: 'RUNNING', steps: [{ step: 'probe', status: 'running', attempts: 1, startedAtMs: t0 }] };
const installing: HostView = {
  id: 'web-1',
  phase: 'installing-agent',
  workflowStatus: 'RUNNING',
  steps: [
    { step: 'probe', status: 'succeeded', attempts: 1, startedAtMs: t0, endedAtMs: t0 + 1200 },
    { step: 'install-agent', status: 'running', attempts: 2, startedAtMs: t0 + 2000, error: { type: 'AnsibleFailed', message: 'task  "install telegraf"\n failed' } },
  ],
};
const healthy: HostView = { ...installing, phase: 'healthy', workflowStatus: 'COMPLETED', steps: installing.steps!.map((s) => ({ ...s, status: 'succeeded', error: undefined, endedAtMs: t0 + 5000 })) };

describe('progress view', () => {
  it('renders a compact step table in step order with attempts, durations and the last error on one line', () => {
    const lines = renderTable({ ...installing, steps: [...installing.steps!].reverse() }, t0 + 3500);
    expect(lines[0]).toBe('web-1  phase: installing-agent');
    expect(lines[2]).toMatch(/^✔ probe\s+succeeded\s+1\s+1\.2s$/);
    expect(lines[3]).toMatch(/^… install-agent\s+running\s+2\s+1\.5s\s+AnsibleFailed: task "install telegraf" failed$/);
  });

  it('tells a waiting operator what to run', () => {
    const lines = renderTable({ id: 'web-1', phase: 'needs-host-key-approval', offeredHostKeySha256: 'SHA256:abc' });
    expect(lines.join('\n')).toContain('hosts approve-key web-1 SHA256:abc');
  });

  it('shows the last change or key rotation and how it ended', () => {
    const base = { id: 'web-1', phase: 'healthy' };
    expect(renderTable({ ...base, changes: [{ id: 'change-1', kind: 'change', change: { labels: {}, interval: '30s' } }] })).toContain('  change change-1 (labels, interval): running');
    const rolledBack = renderTable({
      ...base,
      changes: [
        { id: 'change-1', kind: 'change', endedAtMs: t0, outcome: 'applied' },
        { id: 'change-2', kind: 'change', change: { agentVersion: '1.39.3-1' }, endedAtMs: t0, outcome: 'rolled-back', error: 'NoPoints:\n no points' },
      ],
    });
    expect(rolledBack).toContain('  change change-2 (agentVersion): rolled-back: NoPoints: no points');
    expect(renderTable({ ...base, changes: [{ id: 'rotate-key-3', kind: 'rotate-key', endedAtMs: t0, outcome: 'applied' }] })).toContain('  rotate-key rotate-key-3: applied');
  });

  it('reports only what changed, one line each', () => {
    expect(changeLines(undefined, probing)).toEqual(['web-1 phase probing', 'web-1 probe running (attempt 1)']);
    expect(changeLines(probing, probing)).toEqual([]);
    expect(changeLines(probing, installing)).toEqual([
      'web-1 phase installing-agent',
      'web-1 probe succeeded (attempt 1)',
      'web-1 install-agent running (attempt 2): AnsibleFailed: task "install telegraf" failed',
    ]);
  });
});

describe('agent-onboarding CLI', () => {
  it('hosts add --wait: password from stdin, token from env, progress one line per change, exit 0 when healthy', async () => {
    const api = await fakeApi([probing, installing, healthy]);
    try {
      const { io, out, err } = memoryIo('s3cret-pw\n', { AO_API_URL: api.url, AO_API_TOKEN: 'tok-0123456789abcdef' });
      const code = await main(['hosts', 'add', '--address', '10.213.1.5', '--user', 'admin', '--password-stdin', '--label', 'env=prod', '--wait'], io);
      expect(code).toBe(0);
      const post = api.seen.find((r) => r.method === 'POST')!;
      expect(post).toMatchObject({
        url: '/v1/hosts',
        auth: 'Bearer tok-0123456789abcdef',
        body: { address: '10.213.1.5', username: 'admin', password: 's3cret-pw', labels: { env: 'prod' } },
      });
      expect(err()).toContain('onboarding web-1');
      const lines = out().trim().split('\n').map((l) => l.replace(/^\S+ /, ''));
      expect(lines).toEqual([
        'web-1 phase probing',
        'web-1 probe running (attempt 1)',
        'web-1 phase installing-agent',
        'web-1 probe succeeded (attempt 1)',
        'web-1 install-agent running (attempt 2): AnsibleFailed: task "install telegraf" failed',
        'web-1 phase healthy',
        'web-1 install-agent succeeded (attempt 2)',
      ]);
      expect(out() + err()).not.toContain('s3cret-pw');
    } finally {
      await api.close();
    }
  });

  it('prints field errors from a 400 and exits 1', async () => {
    const api = await fakeApi([probing], 400, {
      statusCode: 400,
      code: 'VALIDATION_FAILED',
      message: 'invalid request: address',
      errors: [{ field: 'address', constraints: { isHostAddress: 'address must be an IPv4 address, an IPv6 address or a DNS name' } }],
    });
    try {
      const { io, err } = memoryIo('pw\n', { AO_API_URL: api.url });
      expect(await main(['hosts', 'add', '--address', 'bad!', '--user', 'admin', '--password-stdin'], io)).toBe(1);
      expect(err()).toContain('error 400 VALIDATION_FAILED');
      expect(err()).toContain('  address: address must be');
    } finally {
      await api.close();
    }
  });

  it('hosts change: labels, interval, agent mode and version in one PATCH; the change id on stderr', async () => {
    const api = await fakeApi([healthy], 202, { accepted: true, changeId: 'change-1', statusUrl: '/v1/hosts/web-1' });
    try {
      const { io, out, err } = memoryIo('', { AO_API_URL: api.url, AO_API_TOKEN: 'tok-0123456789abcdef' });
      const argv = ['hosts', 'change', 'web-1', '--label', 'env=prod', '--label', 'team=a=b', '--interval', '30s', '--agent-mode', 'repo', '--agent-version', '1.39.3-1'];
      expect(await main(argv, io)).toBe(0);
      expect(api.seen).toEqual([
        {
          method: 'PATCH',
          url: '/v1/hosts/web-1',
          auth: 'Bearer tok-0123456789abcdef',
          body: { labels: { env: 'prod', team: 'a=b' }, interval: '30s', agentMode: 'repo', agentVersion: '1.39.3-1' },
        },
      ]);
      expect(err()).toContain('change-1 accepted for web-1');
      expect(out()).toBe('');

      const cleared = memoryIo('', { AO_API_URL: api.url });
      expect(await main(['hosts', 'change', 'web-1', '--clear-labels', '--json'], cleared.io)).toBe(0);
      expect(api.seen[1]).toMatchObject({ method: 'PATCH', body: { labels: {} } });
      expect(JSON.parse(cleared.out())).toEqual({ accepted: true, changeId: 'change-1', statusUrl: '/v1/hosts/web-1' });

      expect(await main(['hosts', 'change', 'web-1', '--agent-version', ''], memoryIo('', { AO_API_URL: api.url }).io)).toBe(0);
      expect(api.seen[2].body).toEqual({ agentVersion: '' }); // unpin
    } finally {
      await api.close();
    }
  });

  it('hosts rotate-key: a POST without a body', async () => {
    const api = await fakeApi([healthy], 202, { accepted: true, changeId: 'rotate-key-2', statusUrl: '/v1/hosts/web-1' });
    try {
      const { io, err } = memoryIo('', { AO_API_URL: api.url });
      expect(await main(['hosts', 'rotate-key', 'web-1'], io)).toBe(0);
      expect(api.seen).toEqual([{ method: 'POST', url: '/v1/hosts/web-1/rotate-key', auth: undefined, body: undefined }]);
      expect(err()).toContain('rotate-key-2 accepted for web-1');
    } finally {
      await api.close();
    }
  });

  it('a change the host refuses is exit 1 with its reason', async () => {
    const api = await fakeApi([healthy], 409, { statusCode: 409, code: 'CONFLICT', message: 'change change-1 is still in progress' });
    try {
      const { io, err } = memoryIo('', { AO_API_URL: api.url });
      expect(await main(['hosts', 'change', 'web-1', '--interval', '1m'], io)).toBe(1);
      expect(err()).toContain('error 409 CONFLICT: change change-1 is still in progress');
      const rotate = memoryIo('', { AO_API_URL: api.url });
      expect(await main(['hosts', 'rotate-key', 'web-1'], rotate.io)).toBe(1);
      expect(rotate.err()).toContain('error 409 CONFLICT');
    } finally {
      await api.close();
    }
  });

  it.each([
    [['hosts', 'change', 'web-1']],
    [['hosts', 'change', '--interval', '30s']],
    [['hosts', 'change', 'web-1', 'web-2', '--interval', '30s']],
    [['hosts', 'change', 'web-1', '--label', 'novalue']],
    [['hosts', 'change', 'web-1', '--label', 'a=b', '--clear-labels']],
    [['hosts', 'change', 'web-1', '--version', '1']],
    [['hosts', 'rotate-key']],
    [['hosts', 'rotate-key', 'web-1', 'web-2']],
    [['hosts', 'add', '--address', 'h', '--user', 'a', '--password', 'on-argv']],
    [['hosts', 'add', '--address', 'h', '--user', 'a']],
    [['hosts', 'add', '--address', 'h', '--user', 'a', '--password-stdin', '--key-file', '/dev/null']],
    [['hosts', 'frobnicate']],
    [['hosts', 'show']],
  ])('usage errors exit 64 without calling the API: %j', async (argv) => {
    const { io, err } = memoryIo('', { AO_API_URL: 'http://127.0.0.1:9' });
    expect(await main(argv, io)).toBe(64);
    expect(err()).toContain('usage: agent-onboarding');
  });

  it('says so when the API cannot be reached', async () => {
    const { io, err } = memoryIo('', { AO_API_URL: 'http://127.0.0.1:9' });
    expect(await main(['tunnels', 'list'], io)).toBe(1);
    expect(err()).toContain('cannot reach the API at http://127.0.0.1:9');
  });
});

describe('agent-onboarding keys api-env', () => {
  const newest = Buffer.alloc(32, 2).toString('base64');
  const master = `k2:${newest},k1:${Buffer.alloc(32, 1).toString('base64')}`;

  it('prints the API key variables derived from AO_MASTER_KEYS, and they load as the API config', async () => {
    const { io, out } = memoryIo('', { AO_MASTER_KEYS: master });
    expect(await main(['keys', 'api-env'], io)).toBe(0);
    const lines = out().trim().split('\n');
    expect(lines.map((l) => l.slice(0, l.indexOf('=')))).toEqual(['AO_CODEC_KEYS', 'AO_SEAL_PUBLIC_KEYS']);
    const env = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    expect(env).toEqual(apiKeyEnv(Keyring.parse(master)));
    expect(loadApiConfig(env).keys.sealer.ids).toEqual(['k2', 'k1']);
    expect(out()).not.toContain(newest);
  });

  it('fails with a message when AO_MASTER_KEYS is missing or malformed', async () => {
    const missing = memoryIo('', {});
    expect(await main(['keys', 'api-env'], missing.io)).toBe(1);
    expect(missing.err()).toContain('AO_MASTER_KEYS');
    const bad = memoryIo('', { AO_MASTER_KEYS: 'k1:c2hvcnQ=' });
    expect(await main(['keys', 'api-env'], bad.io)).toBe(1);
    expect(bad.err()).toMatch(/32 bytes/);
    expect(await main(['keys', 'api-env', 'extra'], memoryIo('', { AO_MASTER_KEYS: master }).io)).toBe(64);
  });
});
