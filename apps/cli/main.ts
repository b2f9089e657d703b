import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CORE_SCHEMA, load } from 'js-yaml';
import { ApiClient, ApiRequestError, ApiUnreachableError } from './api-client';
import { fleetCommand } from './fleets';
import { apiEnvFile } from './keys';
import { followOnboarding, renderTable, type HostView, type Outcome } from './progress';

export interface Io {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown };
  env: Record<string, string | undefined>;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

const USAGE = `usage: agent-onboarding <command>

  hosts add --address ADDR --user USER (--password-stdin | --key-file FILE [--passphrase-stdin])
            [--port N] [--host-id ID] [--data-path direct|tunnel|proxy] [--influx-url URL]
            [--bastion USER@HOST[:PORT] (--bastion-password-stdin | --bastion-key-file FILE) [--bastion-host-key SHA256:…]]
            [--expected-host-key SHA256:…] [--proxy-bind-address IP] [--agent-mode artifact|repo]
            [--label KEY=VALUE]… [--wait]
  hosts list [--phase PHASE] [--page-size N]
  hosts show ID
  hosts watch ID                      follow an onboarding until it is healthy, failed or waiting for you
  hosts remove ID                     offboard: stop its tunnel, uninstall Telegraf, remove cloudroot
  hosts change ID [--label KEY=VALUE]… [--clear-labels] [--interval 30s] [--agent-mode artifact|repo] [--agent-version V]
                                      change a healthy host's agent (--label replaces all labels; --agent-version "" unpins);
                                      it re-runs the role, verifies, rolls back if no points arrive (\`hosts show\`: changes)
  hosts rotate-key ID                 give cloudroot a new key; the old one goes once the new one is proven
  hosts credentials ID --user USER (--password-stdin | --key-file FILE [--passphrase-stdin]) [--hop target|bastion]
  hosts approve-key ID SHA256:… [--hop target|bastion]   --hop: whose login/key (default: the one waiting)
  fleets add -f FILE [--password-stdin | --key-file FILE] [--wait]
                                      a fleet from a JSON or YAML file {name, concurrency?, defaults, hosts: [{address, …}] | source};
                                      the defaults' secret from stdin or a key file (keep secrets out of files)
  fleets list | show ID | watch ID    counts per phase; watch draws a progress bar until the fleet settles
  fleets hosts ID [--phase PHASE] [--page-size N] [--offset N]
  fleets retry ID [--user USER (--password-stdin | --key-file FILE)] [--port N] [--host ID]… [--phase failed|needs-credentials]…
                                      retry failed and waiting hosts (only those), with corrected inputs
  fleets remove ID [--offboard]       end the fleet (its hosts stay monitored unless --offboard)
  tunnels list
  tunnels show ID
  keys api-env                        print the API's AO_CODEC_KEYS and AO_SEAL_PUBLIC_KEYS, derived from
                                      AO_MASTER_KEYS in the environment (the API must never get the master keys)

Secrets are read from stdin, one per line, in this order: password, passphrase, bastion password.
Environment: AO_API_URL (default http://127.0.0.1:8080), AO_API_TOKEN.
Add --json to list/show commands for machine-readable output.
Exit codes: 0 ok/healthy, 1 error/failed, 2 waiting for a human (credentials or host-key approval), 64 usage.
`;

const POLL_MS = 1000;
const EXIT_CODES: Record<Outcome, number> = { healthy: 0, failed: 1, 'needs-human': 2 };

/** Reads the secrets the flags ask for from stdin, one per line (hidden input on a terminal). */
async function readSecrets(io: Io, names: string[]): Promise<string[]> {
  if (names.length === 0) return [];
  if (io.stdin.isTTY) {
    const out: string[] = [];
    for (const name of names) out.push(await readHiddenLine(io, `${name}: `));
    return out;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin) chunks.push(Buffer.from(chunk as Buffer));
  const lines = Buffer.concat(chunks).toString('utf8').split(/\r?\n/);
  if (lines.length < names.length || names.some((_, i) => lines[i] === '')) {
    throw new UsageError(`stdin must hold ${names.join(', then ')} (one per line)`);
  }
  return lines.slice(0, names.length);
}

function readHiddenLine(io: Io, prompt: string): Promise<string> {
  io.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let value = '';
    io.stdin.setRawMode?.(true);
    io.stdin.resume();
    const onData = (data: Buffer) => {
      for (const ch of data.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new UsageError('interrupted'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    const done = (err?: Error) => {
      io.stdin.removeListener('data', onData);
      io.stdin.setRawMode?.(false);
      io.stdin.pause();
      io.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    io.stdin.on('data', onData);
  });
}

function parseBastion(spec: string): { username: string; address: string; port?: number } {
  const m = /^([^@\s]+)@(\[[^\]]+\]|[^:\s]+)(?::(\d{1,5}))?$/.exec(spec);
  if (!m) throw new UsageError('--bastion must look like user@host[:port]');
  return { username: m[1], address: m[2].replace(/^\[|\]$/g, ''), ...(m[3] ? { port: Number(m[3]) } : {}) };
}

function parseLabels(specs: string[] | undefined): Record<string, string> | undefined {
  if (!specs?.length) return undefined;
  const labels: Record<string, string> = {};
  for (const spec of specs) {
    const i = spec.indexOf('=');
    if (i <= 0) throw new UsageError(`--label must look like key=value, got "${spec}"`);
    labels[spec.slice(0, i)] = spec.slice(i + 1);
  }
  return labels;
}

function parseIntFlag(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`${name} must be a number`);
  return Number(v);
}

const LOGIN_FLAGS = {
  user: { type: 'string' },
  'password-stdin': { type: 'boolean' },
  'key-file': { type: 'string' },
  'passphrase-stdin': { type: 'boolean' },
} as const;

/** Builds { username, password | privateKey, passphrase } plus which stdin secrets it still needs. */
function loginFrom(values: { user?: string; 'password-stdin'?: boolean; 'key-file'?: string; 'passphrase-stdin'?: boolean }) {
  if (!values.user) throw new UsageError('--user is required');
  if (Boolean(values['password-stdin']) === Boolean(values['key-file'])) throw new UsageError('give exactly one of --password-stdin or --key-file');
  const login: Record<string, string> = { username: values.user };
  if (values['key-file']) login.privateKey = readFileSync(values['key-file'], 'utf8');
  const secrets: Array<[string, (v: string) => void]> = [];
  if (values['password-stdin']) secrets.push(['password', (v) => (login.password = v)]);
  if (values['passphrase-stdin']) {
    if (!values['key-file']) throw new UsageError('--passphrase-stdin needs --key-file');
    secrets.push(['passphrase', (v) => (login.passphrase = v)]);
  }
  return { login, secrets };
}

async function watch(api: ApiClient, io: Io, id: string): Promise<number> {
  const result = await followOnboarding(api, id, { out: io.stdout, pollMs: POLL_MS });
  return EXIT_CODES[result.outcome];
}

function printJson(io: Io, v: unknown): void {
  io.stdout.write(JSON.stringify(v, null, 2) + '\n');
}

async function hostsAdd(api: ApiClient, io: Io, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...LOGIN_FLAGS,
      address: { type: 'string' },
      port: { type: 'string' },
      'host-id': { type: 'string' },
      'data-path': { type: 'string' },
      'influx-url': { type: 'string' },
      bastion: { type: 'string' },
      'bastion-password-stdin': { type: 'boolean' },
      'bastion-key-file': { type: 'string' },
      'bastion-host-key': { type: 'string' },
      'expected-host-key': { type: 'string' },
      'proxy-bind-address': { type: 'string' },
      'agent-mode': { type: 'string' },
      label: { type: 'string', multiple: true },
      wait: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    strict: true,
  });
  if (!values.address) throw new UsageError('--address is required');
  const { login, secrets } = loginFrom(values);
  // The stdin secrets are filled into `login` later, so the body is that very object.
  const body: Record<string, unknown> = Object.assign(login, { address: values.address });
  const port = parseIntFlag(values.port, '--port');
  if (port !== undefined) body.port = port;
  if (values['host-id']) body.hostId = values['host-id'];
  if (values['data-path']) body.dataPath = values['data-path'];
  if (values['influx-url']) body.influxUrl = values['influx-url'];
  if (values['expected-host-key']) body.expectedHostKeySha256 = values['expected-host-key'];
  if (values['proxy-bind-address']) body.proxyBindAddress = values['proxy-bind-address'];
  if (values['agent-mode']) body.agentMode = values['agent-mode'];
  const labels = parseLabels(values.label);
  if (labels) body.labels = labels;
  if (values.bastion) {
    const bastion: Record<string, unknown> = parseBastion(values.bastion);
    if (Boolean(values['bastion-password-stdin']) === Boolean(values['bastion-key-file'])) {
      throw new UsageError('with --bastion give exactly one of --bastion-password-stdin or --bastion-key-file');
    }
    if (values['bastion-key-file']) bastion.privateKey = readFileSync(values['bastion-key-file'], 'utf8');
    if (values['bastion-password-stdin']) secrets.push(['bastion password', (v) => (bastion.password = v)]);
    if (values['bastion-host-key']) bastion.hostKeySha256 = values['bastion-host-key'];
    body.bastion = bastion;
  } else if (values['bastion-password-stdin'] || values['bastion-key-file'] || values['bastion-host-key']) {
    throw new UsageError('bastion options need --bastion');
  }
  const read = await readSecrets(io, secrets.map(([name]) => name));
  secrets.forEach(([, set], i) => set(read[i]));

  const accepted = await api.request<{ id: string; workflowId: string; statusUrl: string }>('POST', '/v1/hosts', body);
  if (values.json && !values.wait) printJson(io, accepted);
  else io.stderr.write(`onboarding ${accepted.id} (${accepted.workflowId})\n`);
  return values.wait ? watch(api, io, accepted.id) : 0;
}

async function hostsChange(api: ApiClient, io: Io, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      label: { type: 'string', multiple: true },
      'clear-labels': { type: 'boolean' },
      interval: { type: 'string' },
      'agent-mode': { type: 'string' },
      'agent-version': { type: 'string' },
      json: { type: 'boolean' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 1) throw new UsageError('hosts change needs exactly one host id');
  const [id] = positionals;
  const body: Record<string, unknown> = {};
  const labels = parseLabels(values.label);
  if (labels && values['clear-labels']) throw new UsageError('give --label or --clear-labels, not both');
  if (labels) body.labels = labels;
  if (values['clear-labels']) body.labels = {};
  if (values.interval !== undefined) body.interval = values.interval;
  if (values['agent-mode'] !== undefined) body.agentMode = values['agent-mode'];
  if (values['agent-version'] !== undefined) body.agentVersion = values['agent-version'];
  if (Object.keys(body).length === 0) throw new UsageError('hosts change needs at least one of --label, --clear-labels, --interval, --agent-mode, --agent-version');
  const accepted = await api.patch<ChangeAccepted>(`/v1/hosts/${encodeURIComponent(id)}`, body);
  return changeAccepted(io, id, accepted, values.json);
}

interface ChangeAccepted {
  accepted: boolean;
  changeId: string;
  statusUrl: string;
}

function changeAccepted(io: Io, id: string, accepted: ChangeAccepted, json: boolean | undefined): number {
  if (json) printJson(io, accepted);
  else io.stderr.write(`${accepted.changeId} accepted for ${id}; \`hosts show ${id}\` shows its outcome\n`);
  return 0;
}

async function hostsCredentials(api: ApiClient, io: Io, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { ...LOGIN_FLAGS, hop: { type: 'string' } }, allowPositionals: true, strict: true });
  const [id] = positionals;
  if (!id || positionals.length !== 1) throw new UsageError('hosts credentials needs exactly one host id');
  const { login, secrets } = loginFrom(values);
  const read = await readSecrets(io, secrets.map(([name]) => name));
  secrets.forEach(([, set], i) => set(read[i]));
  await api.request('POST', `/v1/hosts/${encodeURIComponent(id)}/credentials`, { ...login, ...hopFlag(values.hop) });
  io.stderr.write(`credentials accepted for ${id}\n`);
  return 0;
}

function hopFlag(hop: string | undefined): { hop?: 'target' | 'bastion' } {
  if (hop === undefined) return {};
  if (hop !== 'target' && hop !== 'bastion') throw new UsageError('--hop must be target or bastion');
  return { hop };
}

function table(io: Io, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (c ?? '').padEnd(widths[i])).join('  ').trimEnd();
  io.stdout.write([line(header), ...rows.map(line)].join('\n') + '\n');
}

export async function run(argv: string[], io: Io): Promise<number> {
  const [group, command, ...rest] = argv;
  const api = new ApiClient(io.env.AO_API_URL?.trim() || 'http://127.0.0.1:8080', io.env.AO_API_TOKEN?.trim() || undefined);
  const simple = () => parseArgs({ args: rest, options: { json: { type: 'boolean' } }, allowPositionals: true, strict: true });

  switch (`${group ?? ''} ${command ?? ''}`.trim()) {
    case 'hosts add':
      return hostsAdd(api, io, rest);
    case 'hosts list': {
      const { values } = parseArgs({
        args: rest,
        options: { json: { type: 'boolean' }, phase: { type: 'string' }, 'page-size': { type: 'string' } },
        strict: true,
      });
      const q = new URLSearchParams();
      if (values.phase) q.set('phase', values.phase);
      const pageSize = parseIntFlag(values['page-size'], '--page-size');
      if (pageSize) q.set('pageSize', String(pageSize));
      const page = await api.request<{ items: Array<Record<string, string>>; nextPageToken: string | null }>('GET', `/v1/hosts${q.size ? `?${q}` : ''}`);
      if (values.json) printJson(io, page);
      else table(io, ['ID', 'ADDRESS', 'PHASE', 'STATUS', 'STARTED'], page.items.map((h) => [h.id, h.address ?? '', h.phase ?? '', h.workflowStatus, h.startedAt]));
      return 0;
    }
    case 'hosts show':
    case 'hosts watch': {
      const { values, positionals } = simple();
      if (positionals.length !== 1) throw new UsageError(`hosts ${command} needs exactly one host id`);
      if (command === 'watch') return watch(api, io, positionals[0]);
      const host = await api.request<HostView>('GET', `/v1/hosts/${encodeURIComponent(positionals[0])}`);
      if (values.json) printJson(io, host);
      else io.stdout.write(renderTable(host).join('\n') + '\n');
      return 0;
    }
    case 'hosts credentials':
      return hostsCredentials(api, io, rest);
    case 'hosts remove': {
      const { positionals } = simple();
      if (positionals.length !== 1) throw new UsageError('hosts remove needs exactly one host id');
      await api.request('DELETE', `/v1/hosts/${encodeURIComponent(positionals[0])}`);
      io.stderr.write(`offboarding ${positionals[0]}; \`hosts show ${positionals[0]}\` says when it is offboarded\n`);
      return 0;
    }
    case 'hosts change':
      return hostsChange(api, io, rest);
    case 'hosts rotate-key': {
      const { values, positionals } = simple();
      if (positionals.length !== 1) throw new UsageError('hosts rotate-key needs exactly one host id');
      const accepted = await api.request<ChangeAccepted>('POST', `/v1/hosts/${encodeURIComponent(positionals[0])}/rotate-key`);
      return changeAccepted(io, positionals[0], accepted, values.json);
    }
    case 'hosts approve-key': {
      const { values, positionals } = parseArgs({ args: rest, options: { hop: { type: 'string' } }, allowPositionals: true, strict: true });
      if (positionals.length !== 2) throw new UsageError('hosts approve-key needs a host id and a SHA256:… fingerprint');
      await api.request('POST', `/v1/hosts/${encodeURIComponent(positionals[0])}/host-key/approve`, { hostKeySha256: positionals[1], ...hopFlag(values.hop) });
      io.stderr.write(`host key approved for ${positionals[0]}\n`);
      return 0;
    }
    case `fleets ${command}`:
      return fleetCommand(command, rest, { api, io, readSecrets: (names) => readSecrets(io, names), usage: (m) => new UsageError(m), parseYaml: (text) => load(text, { schema: CORE_SCHEMA }) });
    case 'tunnels list': {
      const { values } = simple();
      const page = await api.request<{ items: Array<Record<string, string>> }>('GET', '/v1/tunnels');
      if (values.json) printJson(io, page);
      else table(io, ['ID', 'STATUS', 'STARTED'], page.items.map((t) => [t.id, t.workflowStatus, t.startedAt]));
      return 0;
    }
    case 'tunnels show': {
      const { positionals } = simple();
      if (positionals.length !== 1) throw new UsageError('tunnels show needs exactly one tunnel id');
      printJson(io, await api.request('GET', `/v1/tunnels/${encodeURIComponent(positionals[0])}`));
      return 0;
    }
    case 'keys api-env': {
      if (rest.length) throw new UsageError('keys api-env takes no arguments (it reads AO_MASTER_KEYS from the environment)');
      io.stdout.write(apiEnvFile(io.env));
      return 0;
    }
    case 'help':
    case '':
      io.stdout.write(USAGE);
      return 0;
    default:
      throw new UsageError(`unknown command "${argv.slice(0, 2).join(' ')}"`);
  }
}

/** Entry point for bin/agent-onboarding.js: prints errors (never secrets: they are only ever sent, not shown). */
export async function main(argv: string[], io: Io = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  try {
    return await run(argv, io);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
      return 64;
    }
    if (err instanceof ApiRequestError) {
      io.stderr.write(`error ${err.status} ${err.message}\n`);
      for (const e of err.body?.errors ?? []) io.stderr.write(`  ${e.field}: ${Object.values(e.constraints).join('; ')}\n`);
      return 1;
    }
    if (err instanceof ApiUnreachableError) {
      io.stderr.write(`${err.message}\n`);
      return 1;
    }
    io.stderr.write(`error: ${(err as Error).message}\n`);
    return 1;
  }
}
