/**
 * Reads the outcome of an ansible-playbook run. Pure: no I/O, so it is unit-tested on captured output.
 *
 * The activity runs Ansible with our `ao_recap` stdout callback (deploy/ansible/callback_plugins/ao_recap.py),
 * which prints one JSON object at the end. For runs made with the default callback (an operator running the
 * playbook by hand), the text PLAY RECAP and `fatal:` lines are understood too.
 */

export interface HostRecap {
  ok: number;
  changed: number;
  failed: number;
  unreachable: number;
  skipped: number;
  rescued: number;
  ignored: number;
}

export interface TaskFailure {
  host: string;
  kind: 'failed' | 'unreachable';
  task: string;
  /** Short, single-line; never the full task output. */
  message: string;
}

export interface PlaybookRecap {
  hosts: Record<string, HostRecap>;
  failures: TaskFailure[];
  /** `set_stats` data per host (the role publishes telegraf_version and telegraf_started_at_ms). */
  custom: Record<string, Record<string, unknown>>;
}

export const MAX_FAILURE_MESSAGE = 300;

/** One line, at most `max` characters (an ellipsis marks a cut). */
export function shorten(text: string, max = MAX_FAILURE_MESSAGE): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? flat.slice(0, max - 1) + '…' : flat;
}

const COUNT_KEYS: ReadonlyArray<keyof HostRecap> = ['ok', 'changed', 'failed', 'unreachable', 'skipped', 'rescued', 'ignored'];

function toCount(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : 0;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fromAoRecap(doc: Record<string, unknown>): PlaybookRecap {
  const hosts: Record<string, HostRecap> = {};
  if (isRecord(doc.hosts)) {
    for (const [host, raw] of Object.entries(doc.hosts)) {
      const r = isRecord(raw) ? raw : {};
      hosts[host] = Object.fromEntries(COUNT_KEYS.map((k) => [k, toCount(r[k])])) as unknown as HostRecap;
    }
  }
  const failures: TaskFailure[] = [];
  if (isRecord(doc.failures)) {
    for (const [host, raw] of Object.entries(doc.failures)) {
      if (!isRecord(raw)) continue;
      failures.push({
        host,
        kind: raw.kind === 'unreachable' ? 'unreachable' : 'failed',
        task: shorten(String(raw.task ?? 'unknown task'), 120),
        message: shorten(String(raw.message ?? '')),
      });
    }
  }
  const custom: Record<string, Record<string, unknown>> = {};
  if (isRecord(doc.custom)) {
    for (const [host, raw] of Object.entries(doc.custom)) if (isRecord(raw)) custom[host] = raw;
  }
  return { hosts, failures, custom };
}

const RECAP_LINE = /^(\S+)\s*:\s*((?:\w+=\d+\s*)+)$/;
const TASK_LINE = /^(?:TASK|RUNNING HANDLER) \[(.+?)\]/;
const FATAL_LINE = /^(fatal|failed): \[([^\]]+)\](?: => \(item=.*?\))?: (FAILED|UNREACHABLE)! =>\s?(.*)$/;

function messageFromResultText(text: string): string {
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    for (const key of ['msg', 'stderr', 'reason', 'module_stderr', 'stdout']) {
      const v = parsed[key];
      if (typeof v === 'string' && v.trim()) return v;
    }
  } catch {
    // not JSON (yaml result format or a cut line): the raw text, shortened, is still the best hint
  }
  return text;
}

/** The `msg` of a YAML-formatted result (callback_result_format = yaml) following a `fatal:` line. */
function yamlMessage(lines: string[], from: number): string {
  for (let i = from; i < lines.length && /^\s+\S/.test(lines[i]); i++) {
    const m = /^(\s+)msg:\s*(.*)$/.exec(lines[i]);
    if (!m) continue;
    if (!/^[|>]/.test(m[2])) return m[2].replace(/^['"]|['"]$/g, '');
    const block: string[] = [];
    for (let j = i + 1; j < lines.length && lines[j].length > 0 && lines[j].search(/\S/) > m[1].length; j++) block.push(lines[j]);
    return block.join(' ');
  }
  return '';
}

function fromText(lines: string[]): PlaybookRecap | null {
  const start = lines.findIndex((l) => l.startsWith('PLAY RECAP'));
  if (start < 0) return null;
  const hosts: Record<string, HostRecap> = {};
  for (const line of lines.slice(start + 1)) {
    const m = RECAP_LINE.exec(line.trim());
    if (!m) continue;
    const counts: Record<string, number> = {};
    for (const pair of m[2].trim().split(/\s+/)) {
      const [k, v] = pair.split('=');
      counts[k === 'failures' ? 'failed' : k] = toCount(v);
    }
    hosts[m[1]] = Object.fromEntries(COUNT_KEYS.map((k) => [k, counts[k] ?? 0])) as unknown as HostRecap;
  }
  const failures: TaskFailure[] = [];
  let task = 'unknown task';
  for (let i = 0; i < start; i++) {
    const line = lines[i];
    const t = TASK_LINE.exec(line);
    if (t) {
      task = t[1];
      continue;
    }
    const f = FATAL_LINE.exec(line.trimEnd());
    if (!f || failures.some((x) => x.host === f[2])) continue;
    // "...ignoring" follows failures the play tolerated (ignore_errors)
    const next = lines.slice(i + 1).find((l) => !/^\s/.test(l)) ?? '';
    if (next.startsWith('...ignoring')) continue;
    const raw = f[4].trim() ? messageFromResultText(f[4]) : yamlMessage(lines, i + 1);
    failures.push({
      host: f[2],
      kind: f[3] === 'UNREACHABLE' ? 'unreachable' : 'failed',
      task: shorten(task, 120),
      message: shorten(raw),
    });
  }
  return { hosts, failures, custom: {} };
}

/** The recap of a run, or null when the output has none (Ansible died before the end of the play). */
export function parseRecap(stdout: string): PlaybookRecap | null {
  const lines = stdout.split(/\r?\n/);
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i].trim();
    if (!line.startsWith('{') || !line.includes('"ao_recap"')) continue;
    try {
      const doc = JSON.parse(line) as unknown;
      if (isRecord(doc) && doc.ao_recap !== undefined) return fromAoRecap(doc);
    } catch {
      // a truncated document: fall through to the text recap
    }
  }
  return fromText(lines);
}

/** Totals over all hosts (a run here has one host, but the shape does not depend on it). */
export function totals(recap: PlaybookRecap): HostRecap {
  const sum: HostRecap = { ok: 0, changed: 0, failed: 0, unreachable: 0, skipped: 0, rescued: 0, ignored: 0 };
  for (const h of Object.values(recap.hosts)) for (const k of COUNT_KEYS) sum[k] += h[k];
  return sum;
}

/** "task: message" of the first failure of `host` (or of any host), for an error message. */
export function describeFailure(recap: PlaybookRecap, host?: string): string | undefined {
  const f = recap.failures.find((x) => host === undefined || x.host === host) ?? recap.failures[0];
  if (!f) return undefined;
  return f.message ? `${f.task}: ${f.message}` : f.task;
}
