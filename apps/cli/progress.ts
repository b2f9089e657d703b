import type { ApiClient } from './api-client';

/** The compact step table of an onboarding, redrawn on a TTY or printed as one line per change otherwise. */
export interface StepView {
  step: string;
  status: string;
  attempts: number;
  startedAtMs?: number;
  endedAtMs?: number;
  error?: { type: string; message: string };
}

export interface HostView {
  id: string;
  verified?: { pointsSeen: number; lastPointAtMs: number };
  phase?: string;
  workflowStatus?: string;
  address?: string;
  steps?: StepView[];
  lastError?: { type: string; message: string };
  offeredHostKeySha256?: string;
  /** Which hop a waiting phase is about: the host itself or its bastion. */
  waitingOn?: 'target' | 'bastion';
  activities?: Array<{ activityType: string; attempt: number; lastFailure?: { type?: string; message: string } }>;
  tunnel?: { id: string; state: string };
  /** Changes and key rotations (PATCH, rotate-key), newest last. */
  changes?: Array<{ id: string; kind: string; change?: Record<string, unknown>; endedAtMs?: number; outcome?: string; error?: string }>;
}

const STEP_ORDER = ['probe', 'cloudroot', 'install-agent', 'tunnel', 'verify'];
const MARK: Record<string, string> = { succeeded: '✔', failed: '✖', running: '…', waiting: '⏸' };

function duration(step: StepView, nowMs: number): string {
  if (!step.startedAtMs) return '';
  const ms = (step.endedAtMs ?? nowMs) - step.startedAtMs;
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
}

function oneLine(s: string, max = 60): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export function renderTable(host: HostView, nowMs = Date.now()): string[] {
  const lines = [`${host.id}  phase: ${host.phase ?? 'unknown'}${host.workflowStatus && host.workflowStatus !== 'RUNNING' ? ` (${host.workflowStatus.toLowerCase()})` : ''}`];
  const steps = [...(host.steps ?? [])].sort((a, b) => STEP_ORDER.indexOf(a.step) - STEP_ORDER.indexOf(b.step));
  if (steps.length > 0) {
    lines.push(`  ${'step'.padEnd(14)}${'status'.padEnd(12)}${'try'.padEnd(5)}${'time'.padEnd(8)}note`);
    for (const s of steps) {
      const note = s.error ? oneLine(`${s.error.type}: ${s.error.message}`) : '';
      lines.push(`${MARK[s.status] ?? ' '} ${s.step.padEnd(14)}${s.status.padEnd(12)}${String(s.attempts).padEnd(5)}${duration(s, nowMs).padEnd(8)}${note}`.trimEnd());
    }
  }
  const retrying = (host.activities ?? []).find((a) => a.attempt > 1 && a.lastFailure);
  if (retrying) lines.push(`  retrying ${retrying.activityType} (attempt ${retrying.attempt}): ${oneLine(retrying.lastFailure!.message)}`);
  if (host.tunnel) lines.push(`  tunnel ${host.tunnel.id}: ${host.tunnel.state}`);
  const last = host.changes?.[host.changes.length - 1];
  if (last) {
    const what = last.kind === 'change' && last.change ? ` (${Object.keys(last.change).join(', ')})` : '';
    const outcome = last.endedAtMs === undefined ? 'running' : (last.outcome ?? 'ended');
    lines.push(`  ${last.kind} ${last.id}${what}: ${outcome}${last.error ? `: ${oneLine(last.error)}` : ''}`);
  }
  const bastion = host.waitingOn === 'bastion';
  const hop = bastion ? ' --hop bastion' : '';
  if (host.phase === 'needs-credentials') {
    lines.push(`  waiting for ${bastion ? 'bastion ' : ''}credentials: agent-onboarding hosts credentials ${host.id} --user … --password-stdin${hop}`);
  }
  if (host.phase === 'needs-host-key-approval' && host.offeredHostKeySha256) {
    lines.push(`  ${bastion ? 'bastion' : 'host'} key changed, offered ${host.offeredHostKeySha256}: agent-onboarding hosts approve-key ${host.id} ${host.offeredHostKeySha256}${hop}`);
  }
  if (host.phase === 'failed' && host.lastError) lines.push(`  failed: ${oneLine(`${host.lastError.type}: ${host.lastError.message}`, 120)}`);
  return lines;
}

/** Lines describing what changed between two snapshots (non-TTY output). */
export function changeLines(prev: HostView | undefined, next: HostView): string[] {
  const out: string[] = [];
  if (prev?.phase !== next.phase) out.push(`${next.id} phase ${next.phase ?? 'unknown'}`);
  const before = new Map((prev?.steps ?? []).map((s) => [s.step, s]));
  for (const s of next.steps ?? []) {
    const p = before.get(s.step);
    if (!p || p.status !== s.status || p.attempts !== s.attempts) {
      out.push(`${next.id} ${s.step} ${s.status} (attempt ${s.attempts})${s.error ? `: ${oneLine(`${s.error.type}: ${s.error.message}`)}` : ''}`);
    }
  }
  return out;
}

export interface ProgressWriter {
  update(host: HostView): void;
}

export function progressWriter(out: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean }): ProgressWriter {
  if (out.isTTY) {
    let drawn = 0;
    return {
      update(host) {
        const lines = renderTable(host);
        // Back to the first line of the previous table, clear to the end, draw again.
        out.write((drawn > 0 ? `\x1b[${drawn}F\x1b[J` : '') + lines.join('\n') + '\n');
        drawn = lines.length;
      },
    };
  }
  let prev: HostView | undefined;
  return {
    update(host) {
      const lines = changeLines(prev, host);
      const stamp = new Date().toISOString();
      for (const l of lines) out.write(`${stamp} ${l}\n`);
      prev = host;
    },
  };
}

export type Outcome = 'healthy' | 'failed' | 'needs-human';

export function outcomeOf(host: HostView): Outcome | undefined {
  if (host.phase === 'healthy') return 'healthy';
  if (host.phase === 'failed') return 'failed';
  if (host.phase === 'needs-credentials' || host.phase === 'needs-host-key-approval') return 'needs-human';
  if (host.workflowStatus && host.workflowStatus !== 'RUNNING') return 'failed';
  return undefined;
}

export interface FollowOptions {
  /** No progress output (callers that print their own summary). */
  quiet?: boolean;
  out?: { write(s: string): unknown; isTTY?: boolean };
  pollMs?: number;
  /** Give up after this long (default: never). */
  timeoutMs?: number;
}

export type FollowResult = HostView & { hostId: string; phase: string; outcome: Outcome };

/** Polls GET /v1/hosts/:id until healthy, failed or waiting for a human; shows progress unless quiet. */
export async function followOnboarding(api: ApiClient, hostId: string, opts: FollowOptions = {}): Promise<FollowResult> {
  const writer = opts.quiet ? undefined : progressWriter(opts.out ?? process.stdout);
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  for (;;) {
    const host = await api.get<HostView>(`/v1/hosts/${encodeURIComponent(hostId)}`);
    writer?.update(host);
    const outcome = outcomeOf(host);
    if (outcome) return { ...host, hostId, phase: host.phase ?? 'unknown', outcome };
    if (Date.now() > deadline) throw new Error(`onboarding ${hostId} still ${host.phase ?? 'unknown'} after ${opts.timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 1000));
  }
}
