import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { ApiClient } from './api-client';

/** What the CLI needs from its caller (the same streams as the host commands). */
export interface FleetIo {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown };
}

export interface FleetView {
  id: string;
  state: string;
  total: number;
  counts: Record<string, number>;
  failures: Record<string, number>;
  active: number;
  concurrency: number;
  workflowStatus?: string;
  retries?: Array<{ id: string; hosts: number; corrected: string[]; endedAtMs?: number; refused?: { hostId: string; why: string }[] }>;
}

const ONBOARDING = ['onboarding', 'probing', 'creating-cloudroot', 'installing-agent', 'starting-tunnel', 'verifying'];
const HUMAN = ['needs-credentials', 'needs-host-key-approval'];
const BAR = 30;

/** `[#####····] 9/12 healthy · 2 needs-credentials · 1 failed · 3 onboarding · 0 pending` */
export function progressLine(f: FleetView): string {
  const n = (phases: string[]) => phases.reduce((sum, p) => sum + (f.counts[p] ?? 0), 0);
  const healthy = f.counts.healthy ?? 0;
  const done = f.total - n([...ONBOARDING, 'pending']);
  const filled = f.total > 0 ? Math.round((done / f.total) * BAR) : 0;
  const parts = [`${healthy}/${f.total} healthy`];
  for (const [label, phases] of [['onboarding', ONBOARDING], ['pending', ['pending']], ['needs-credentials', ['needs-credentials']], ['needs-host-key-approval', ['needs-host-key-approval']], ['failed', ['failed']], ['degraded', ['degraded', 'repairing']], ['offboarded', ['offboarding', 'offboarded']]] as const) {
    const c = n([...phases]);
    if (c > 0) parts.push(`${c} ${label}`);
  }
  const failures = Object.entries(f.failures ?? {}).map(([t, c]) => `${t}×${c}`).join(', ');
  return `[${'#'.repeat(filled)}${'·'.repeat(BAR - filled)}] ${parts.join(' · ')}${failures ? ` (${failures})` : ''} — ${f.state}`;
}

/** 0: all healthy; 2: some wait for a person; 1: some failed (or the fleet ended otherwise). */
export function fleetExitCode(f: FleetView): number {
  if ((f.counts.failed ?? 0) > 0) return 1;
  if (HUMAN.some((p) => (f.counts[p] ?? 0) > 0)) return 2;
  return f.state === 'settled' || f.state === 'closed' ? 0 : 1;
}

/** Polls the fleet until it settles, drawing a progress bar (one line per change when not a terminal). */
export async function watchFleet(api: ApiClient, io: FleetIo, id: string, pollMs = 1000): Promise<number> {
  let last = '';
  for (;;) {
    const f = await api.get<FleetView>(`/v1/fleets/${encodeURIComponent(id)}`);
    const line = `${id} ${progressLine(f)}`;
    if (line !== last) {
      io.stdout.write(io.stdout.isTTY ? `\r\x1b[2K${line}` : `${new Date().toISOString()} ${line}\n`);
      last = line;
    }
    if (f.state === 'settled' || f.state === 'closed' || (f.workflowStatus && f.workflowStatus !== 'RUNNING')) {
      if (io.stdout.isTTY) io.stdout.write('\n');
      const waiting = HUMAN.reduce((s, p) => s + (f.counts[p] ?? 0), 0);
      if (waiting + (f.counts.failed ?? 0) > 0) io.stderr.write(`see \`agent-onboarding fleets hosts ${id} --phase failed\` (or needs-credentials); \`fleets retry ${id}\` retries them\n`);
      return fleetExitCode(f);
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** A fleet file: JSON, or YAML when a YAML parser is given (`{ name, concurrency?, defaults, hosts: [...] }`). */
export function readFleetFile(path: string, parseYaml?: (text: string) => unknown): Record<string, unknown> {
  const text = readFileSync(path, 'utf8');
  const data = /\.ya?ml$/i.test(path) ? (parseYaml ? parseYaml(text) : undefined) : JSON.parse(text);
  if (data === undefined) throw new Error(`${path}: YAML is not supported here; use JSON`);
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error(`${path}: a fleet file is an object with name, defaults and hosts`);
  return data as Record<string, unknown>;
}

export interface FleetCommandDeps {
  api: ApiClient;
  io: FleetIo;
  /** Reads the named secrets (stdin, one per line, or hidden prompts). */
  readSecrets(names: string[]): Promise<string[]>;
  usage(message: string): Error;
  parseYaml?: (text: string) => unknown;
  pollMs?: number;
}

function printJson(io: FleetIo, v: unknown): void {
  io.stdout.write(JSON.stringify(v, null, 2) + '\n');
}

/** `fleets add|list|show|hosts|watch|retry|remove`. */
export async function fleetCommand(command: string | undefined, args: string[], d: FleetCommandDeps): Promise<number> {
  const { api, io } = d;
  switch (command) {
    case 'add': {
      const { values } = parseArgs({ args, options: { file: { type: 'string', short: 'f' }, 'password-stdin': { type: 'boolean' }, 'key-file': { type: 'string' }, wait: { type: 'boolean' }, json: { type: 'boolean' } }, strict: true });
      if (!values.file) throw d.usage('fleets add needs -f FILE (JSON or YAML: name, defaults, hosts or source)');
      const body = readFleetFile(values.file, d.parseYaml);
      const defaults = { ...((body.defaults as Record<string, unknown> | undefined) ?? {}) };
      if (values['password-stdin'] && values['key-file']) throw d.usage('give --password-stdin or --key-file, not both');
      if (values['password-stdin']) defaults.password = (await d.readSecrets(['password']))[0];
      if (values['key-file']) defaults.privateKey = readFileSync(values['key-file'], 'utf8');
      const accepted = await api.request<{ id: string; workflowId: string; hosts: number }>('POST', '/v1/fleets', { ...body, defaults });
      if (values.json && !values.wait) printJson(io, accepted);
      else io.stderr.write(`fleet ${accepted.id}: ${accepted.hosts} hosts (${accepted.workflowId})\n`);
      return values.wait ? watchFleet(api, io, accepted.id, d.pollMs) : 0;
    }
    case 'list': {
      const { values } = parseArgs({ args, options: { json: { type: 'boolean' } }, strict: true });
      const page = await api.get<{ items: FleetView[] }>('/v1/fleets');
      if (values.json) printJson(io, page);
      else for (const f of page.items) io.stdout.write(`${f.id.padEnd(24)} ${progressLine(f)}\n`);
      return 0;
    }
    case 'show':
    case 'watch': {
      const { values, positionals } = parseArgs({ args, options: { json: { type: 'boolean' } }, allowPositionals: true, strict: true });
      if (positionals.length !== 1) throw d.usage(`fleets ${command} needs exactly one fleet id`);
      if (command === 'watch') return watchFleet(api, io, positionals[0], d.pollMs);
      const f = await api.get<FleetView>(`/v1/fleets/${encodeURIComponent(positionals[0])}`);
      if (values.json) printJson(io, f);
      else {
        io.stdout.write(`${f.id} ${progressLine(f)}\n  ${f.active} onboarding now, ${f.concurrency} at once\n`);
        for (const r of f.retries ?? []) io.stdout.write(`  ${r.id}: ${r.hosts} hosts${r.corrected.length ? ` (corrected ${r.corrected.join(', ')})` : ''}${r.endedAtMs ? '' : ' running'}${r.refused?.length ? `, ${r.refused.length} refused` : ''}\n`);
      }
      return 0;
    }
    case 'hosts': {
      const { values, positionals } = parseArgs({ args, options: { phase: { type: 'string' }, json: { type: 'boolean' }, 'page-size': { type: 'string' }, offset: { type: 'string' } }, allowPositionals: true, strict: true });
      if (positionals.length !== 1) throw d.usage('fleets hosts needs exactly one fleet id');
      const q = new URLSearchParams();
      if (values.phase) q.set('phase', values.phase);
      if (values['page-size']) q.set('pageSize', values['page-size']);
      if (values.offset) q.set('offset', values.offset);
      const page = await api.get<{ items: Array<{ hostId: string; address: string; phase: string; reason?: string; error?: { type: string; message: string }; retries: number }>; total: number; nextOffset?: number }>(
        `/v1/fleets/${encodeURIComponent(positionals[0])}/hosts${q.size ? `?${q}` : ''}`,
      );
      if (values.json) printJson(io, page);
      else {
        for (const h of page.items) io.stdout.write(`${h.hostId.padEnd(28)} ${h.address.padEnd(18)} ${h.phase.padEnd(24)} ${h.error ? `${h.error.type}: ${h.error.message.replace(/\s+/g, ' ').slice(0, 80)}` : (h.reason ?? '')}\n`);
        io.stderr.write(`${page.items.length} of ${page.total}${page.nextOffset !== undefined ? `; next page: --offset ${page.nextOffset}` : ''}\n`);
      }
      return 0;
    }
    case 'retry': {
      const { values, positionals } = parseArgs({
        args,
        options: { user: { type: 'string' }, 'password-stdin': { type: 'boolean' }, 'key-file': { type: 'string' }, port: { type: 'string' }, host: { type: 'string', multiple: true }, phase: { type: 'string', multiple: true }, json: { type: 'boolean' } },
        allowPositionals: true,
        strict: true,
      });
      if (positionals.length !== 1) throw d.usage('fleets retry needs exactly one fleet id');
      const body: Record<string, unknown> = {};
      if (values.host) body.hostIds = values.host;
      if (values.phase) body.phases = values.phase;
      if (values.port !== undefined) {
        if (!/^\d+$/.test(values.port)) throw d.usage('--port must be a number');
        body.port = Number(values.port);
      }
      if (values['password-stdin'] || values['key-file']) {
        if (!values.user) throw d.usage('a corrected login needs --user');
        if (values['password-stdin'] && values['key-file']) throw d.usage('give --password-stdin or --key-file, not both');
        body.credential = { username: values.user, ...(values['key-file'] ? { privateKey: readFileSync(values['key-file'], 'utf8') } : { password: (await d.readSecrets(['password']))[0] }) };
      } else if (values.user) throw d.usage('--user goes with --password-stdin or --key-file');
      const accepted = await api.request<{ retryId: string; hosts: number }>('POST', `/v1/fleets/${encodeURIComponent(positionals[0])}/retry`, body);
      if (values.json) printJson(io, accepted);
      else io.stderr.write(`${accepted.retryId}: ${accepted.hosts} hosts retried; \`fleets watch ${positionals[0]}\` follows them\n`);
      return 0;
    }
    case 'remove': {
      const { values, positionals } = parseArgs({ args, options: { offboard: { type: 'boolean' } }, allowPositionals: true, strict: true });
      if (positionals.length !== 1) throw d.usage('fleets remove needs exactly one fleet id');
      await api.request('DELETE', `/v1/fleets/${encodeURIComponent(positionals[0])}${values.offboard ? '?offboard=true' : ''}`);
      io.stderr.write(values.offboard ? `closing ${positionals[0]} and offboarding its hosts\n` : `closing ${positionals[0]}; its hosts stay monitored\n`);
      return 0;
    }
    default:
      throw d.usage(`unknown command "fleets ${command ?? ''}"`);
  }
}
