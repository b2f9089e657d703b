import type { InstallBatchConfig } from '../../lib/config';
import type { Logger } from '../../lib/logging';
import type { PlaybookHost, PlaybookRun, RunPlaybookOptions } from './run-playbook';
import { totals, type HostRecap, type PlaybookRecap } from './recap';

/**
 * Hosts that reach the install step close together share one `ansible-playbook -f N` run (DESIGN §4b). Each
 * member is one `installAgent` activity: it joins the open batch for its kind of run (the same playbook and shared
 * variables), the batch closes when it is full or its window has passed since its first member, and every member
 * gets its own slice of the recap — its counts, its failure, its custom stats — so one host failing fails only that
 * host. The run is detached from every member's activity: a member that is cancelled leaves (if the batch has not
 * started) or stops waiting (if it has), and the others are not disturbed.
 */

export { INSTALL_BATCH_DEFAULTS, type InstallBatchConfig } from '../../lib/config';

/** One member's share of a run: the run's facts, and a recap holding only this host. */
export type MemberRun = PlaybookRun;

export type RunPlaybookFn = (opts: RunPlaybookOptions) => Promise<PlaybookRun>;

interface Member {
  host: PlaybookHost;
  secrets: string[];
  /** Answered already (its host was done before the run ended). */
  answered?: boolean;
  resolve(run: MemberRun): void;
  reject(err: unknown): void;
  left: boolean;
}

interface OpenBatch {
  key: string;
  extraVars: Record<string, unknown>;
  playbook?: string;
  members: Member[];
  timer?: NodeJS.Timeout;
  openedAtMs: number;
}

/** A batch waits at most this many windows in all, however steadily hosts keep arriving. */
const MAX_WINDOWS = 5;

let nextName = 0;

/** The recap of one host of a batch run, under the inventory name its caller expects. */
export function memberRecap(recap: PlaybookRecap, name: string, as: string): PlaybookRecap {
  const counts = recap.hosts[name];
  return {
    hosts: counts ? { [as]: counts } : {},
    failures: recap.failures.filter((f) => f.host === name).map((f) => ({ ...f, host: as })),
    custom: recap.custom[name] ? { [as]: recap.custom[name] } : {},
  };
}

export class InstallBatcher {
  private readonly open = new Map<string, OpenBatch>();
  /** Runs started, and members they carried (tests and the log read them). */
  readonly stats = { runs: 0, members: 0 };

  constructor(
    private readonly config: InstallBatchConfig,
    private readonly run: RunPlaybookFn,
    private readonly log?: Logger,
  ) {}

  /**
   * Runs `host` with the others of its kind. `as` is the inventory name the caller reads the recap under; `signal`
   * is the member's own cancellation. Resolves with a run whose recap holds this host only.
   */
  submit(req: { host: PlaybookHost; as: string; extraVars: Record<string, unknown>; playbook?: string; secrets: string[]; signal?: AbortSignal }): Promise<MemberRun> {
    if (this.config.max <= 1) {
      return this.run({ host: { ...req.host, name: req.as }, extraVars: { ...req.extraVars, ...(req.host.vars ?? {}) }, playbook: req.playbook, secrets: req.secrets, log: this.log, ...(req.signal ? { signal: req.signal } : {}) });
    }
    const key = JSON.stringify([req.playbook ?? '', req.extraVars]);
    return new Promise<MemberRun>((resolve, reject) => {
      let batch = this.open.get(key);
      if (!batch) {
        batch = { key, extraVars: req.extraVars, playbook: req.playbook, members: [], openedAtMs: Date.now() };
        this.open.set(key, batch);
      }
      // The window runs from the latest member: hosts that keep arriving (a fleet's, a few seconds apart) share a
      // run instead of a late few running alone after it; MAX_WINDOWS bounds the wait of the first.
      const b = batch;
      if (b.timer) clearTimeout(b.timer);
      const left = b.openedAtMs + MAX_WINDOWS * this.config.windowMs - Date.now();
      b.timer = setTimeout(() => this.close(b), Math.max(0, Math.min(this.config.windowMs, left)));
      const member: Member = { host: { ...req.host, name: `h${nextName++}` }, secrets: req.secrets, resolve: (r) => resolve(renamed(r, member.host.name, req.as)), reject, left: false };
      batch.members.push(member);
      req.signal?.addEventListener('abort', () => {
        member.left = true;
        reject(new Error('cancelled'));
      }, { once: true });
      if (batch.members.length >= this.config.max) this.close(batch);
    });
  }

  private close(batch: OpenBatch): void {
    if (this.open.get(batch.key) !== batch) return;
    this.open.delete(batch.key);
    if (batch.timer) clearTimeout(batch.timer);
    const members = batch.members.filter((m) => !m.left);
    if (members.length === 0) return;
    this.stats.runs++;
    this.stats.members += members.length;
    const started = Date.now();
    const byName = new Map(members.map((m) => [m.host.name, m]));
    // Each host at its own pace (a slow host does not hold up the others); a host that is done is answered at once.
    const onHostDone = (name: string, done: { counts: HostRecap; custom: Record<string, unknown> }) => {
      const m = byName.get(name);
      if (!m || m.answered || done.counts.failed > 0 || done.counts.unreachable > 0) return;
      m.answered = true;
      m.resolve({ exitCode: 0, recap: { hosts: { [name]: done.counts }, failures: [], custom: { [name]: done.custom } }, stderrTail: '', timedOut: false, cancelled: false, durationMs: Date.now() - started });
    };
    this.run({ hosts: members.map((m) => m.host), extraVars: batch.extraVars, playbook: batch.playbook, secrets: members.flatMap((m) => m.secrets), log: this.log, detached: true, strategy: 'free', onHostDone }).then(
      (run) => {
        const outcome = run.recap ? members.map((m) => totals(memberRecap(run.recap!, m.host.name, m.host.name))) : [];
        this.log?.info('install batch finished', {
          hosts: members.length,
          durationMs: Date.now() - started,
          exitCode: run.exitCode,
          hostsOk: outcome.filter((t) => t.failed === 0 && t.unreachable === 0).length,
          hostsFailed: outcome.filter((t) => t.failed > 0).length,
          hostsUnreachable: outcome.filter((t) => t.unreachable > 0).length,
        });
        for (const m of members) if (!m.answered) m.resolve(run);
      },
      (err) => {
        for (const m of members) m.reject(err);
      },
    );
  }
}

/** The member's view of a batch run: its own recap, under its own name; exit code as if it had run alone. */
function renamed(run: PlaybookRun, name: string, as: string): MemberRun {
  if (!run.recap) return run;
  const recap = memberRecap(run.recap, name, as);
  const t = totals(recap);
  const known = recap.hosts[as] !== undefined;
  // ansible-playbook exits non-zero when any host failed; this host's run "exited" 0 when it did not fail itself.
  const exitCode = known && t.failed === 0 && t.unreachable === 0 ? 0 : run.exitCode === 0 ? 2 : run.exitCode;
  return { ...run, recap, exitCode };
}
