import { InstallBatcher } from './install-batcher';
import type { PlaybookHost, PlaybookRun, RunPlaybookOptions } from './run-playbook';

const host = (n: number): PlaybookHost => ({ name: 'target', address: `10.0.0.${n}`, port: 22, user: 'cloudroot', privateKey: `key-${n}`, hostPublicKey: 'ssh-ed25519 AAAA', vars: { telegraf_host_id: `h${n}` } });

/** A fake ansible-playbook: every host ok but those whose address is in `fail`; records each run. */
function fakeRunner(fail: string[] = [], delayMs = 20) {
  const runs: RunPlaybookOptions[] = [];
  const run = async (opts: RunPlaybookOptions): Promise<PlaybookRun> => {
    runs.push(opts);
    await new Promise((r) => setTimeout(r, delayMs));
    const hosts = opts.hosts ?? [opts.host!];
    const recap = { hosts: {} as Record<string, any>, failures: [] as any[], custom: {} as Record<string, Record<string, unknown>> };
    for (const h of hosts) {
      const bad = fail.includes(h.address);
      recap.hosts[h.name] = { ok: bad ? 3 : 20, changed: 5, failed: bad ? 1 : 0, unreachable: 0, skipped: 0, rescued: 0, ignored: 0 };
      if (bad) recap.failures.push({ host: h.name, kind: 'failed', task: 'install telegraf', message: `broken ${h.address}` });
      else recap.custom[h.name] = { telegraf_version: '1.39.3', telegraf_started_at_ms: 1000 + Number(h.address.split('.')[3]) };
    }
    return { exitCode: fail.length ? 2 : 0, recap, stderrTail: '', timedOut: false, cancelled: false, durationMs: delayMs };
  };
  return { runs, run };
}

const req = (n: number, extra: Record<string, unknown> = { telegraf_state: 'present' }) => ({ host: host(n), as: 'target', extraVars: extra, secrets: [`key-${n}`] });

describe('InstallBatcher', () => {
  it('installs that start within the window share one run; each gets its own recap under its own name', async () => {
    const f = fakeRunner();
    const b = new InstallBatcher({ max: 10, windowMs: 50 }, f.run);
    const results = await Promise.all([1, 2, 3].map((n) => b.submit(req(n))));
    expect(f.runs).toHaveLength(1);
    expect(f.runs[0].hosts?.map((h) => h.address)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    expect(f.runs[0].detached).toBe(true);
    // Per-host vars stay per host; the shared ones are the run's extra vars.
    expect(f.runs[0].hosts?.map((h) => h.vars?.telegraf_host_id)).toEqual(['h1', 'h2', 'h3']);
    expect(new Set(f.runs[0].hosts?.map((h) => h.name)).size).toBe(3);
    results.forEach((r, i) => {
      expect(Object.keys(r.recap!.hosts)).toEqual(['target']);
      expect(r.recap!.custom.target.telegraf_started_at_ms).toBe(1001 + i);
      expect(r.exitCode).toBe(0);
    });
  });

  it('a full batch closes at once; the next install opens a new one', async () => {
    const f = fakeRunner();
    const b = new InstallBatcher({ max: 2, windowMs: 10_000 }, f.run);
    const t0 = Date.now();
    await Promise.all([1, 2].map((n) => b.submit(req(n))));
    expect(Date.now() - t0).toBeLessThan(5000);
    await Promise.all([3, 4].map((n) => b.submit(req(n))));
    expect(f.runs.map((r) => r.hosts?.length)).toEqual([2, 2]);
  });

  it('one host failing fails only that host (its failure, exit code non-zero); the others succeed', async () => {
    const f = fakeRunner(['10.0.0.2']);
    const b = new InstallBatcher({ max: 10, windowMs: 30 }, f.run);
    const [a, bad, c] = await Promise.all([1, 2, 3].map((n) => b.submit(req(n))));
    expect([a.exitCode, bad.exitCode, c.exitCode]).toEqual([0, 2, 0]);
    expect(bad.recap!.failures).toEqual([{ host: 'target', kind: 'failed', task: 'install telegraf', message: 'broken 10.0.0.2' }]);
    expect(a.recap!.failures).toEqual([]);
  });

  it('runs with other shared variables (another mode, an uninstall) are separate batches', async () => {
    const f = fakeRunner();
    const b = new InstallBatcher({ max: 10, windowMs: 30 }, f.run);
    await Promise.all([b.submit(req(1)), b.submit(req(2, { telegraf_state: 'present', telegraf_install_mode: 'repo' })), b.submit(req(3))]);
    expect(f.runs.map((r) => r.hosts?.map((h) => h.address)).sort()).toEqual([['10.0.0.1', '10.0.0.3'], ['10.0.0.2']]);
  });

  it('a member cancelled before the batch closes leaves it; the others run without it', async () => {
    const f = fakeRunner();
    const b = new InstallBatcher({ max: 10, windowMs: 50 }, f.run);
    const abort = new AbortController();
    const leaving = b.submit({ ...req(1), signal: abort.signal });
    const staying = b.submit(req(2));
    abort.abort();
    await expect(leaving).rejects.toThrow('cancelled');
    await staying;
    expect(f.runs[0].hosts?.map((h) => h.address)).toEqual(['10.0.0.2']);
  });

  it('the window runs from the latest member: hosts arriving a little apart share one run (bounded by five windows)', async () => {
    const f = fakeRunner();
    const b = new InstallBatcher({ max: 10, windowMs: 60 }, f.run);
    const all: Promise<unknown>[] = [];
    for (const n of [1, 2, 3, 4]) {
      all.push(b.submit(req(n)));
      await new Promise((r) => setTimeout(r, 40));
    }
    await Promise.all(all);
    expect(f.runs.map((r) => r.hosts?.length)).toEqual([4]);
    expect(f.runs[0].strategy).toBe('free');
  });

  it('a host that is done is answered at once, before the slow one ends the run', async () => {
    let finish!: () => void;
    const gate = new Promise<void>((r) => (finish = r));
    const run = async (opts: RunPlaybookOptions): Promise<PlaybookRun> => {
      const [fast, slow] = opts.hosts!;
      const counts = { ok: 20, changed: 5, failed: 0, unreachable: 0, skipped: 0, rescued: 0, ignored: 0 };
      opts.onHostDone?.(fast.name, { counts, custom: { telegraf_version: '1.39.3', telegraf_started_at_ms: 7 } });
      await gate;
      return { exitCode: 0, recap: { hosts: { [fast.name]: counts, [slow.name]: counts }, failures: [], custom: { [fast.name]: {}, [slow.name]: { telegraf_version: '1.39.3', telegraf_started_at_ms: 9 } } }, stderrTail: '', timedOut: false, cancelled: false, durationMs: 1 };
    };
    const b = new InstallBatcher({ max: 2, windowMs: 1000 }, run);
    const fast = b.submit(req(1));
    const slow = b.submit(req(2));
    const early = await fast;
    expect(early.recap!.custom.target).toEqual({ telegraf_version: '1.39.3', telegraf_started_at_ms: 7 });
    finish();
    expect((await slow).recap!.custom.target.telegraf_started_at_ms).toBe(9);
  });

  it('max 1: every install runs alone with its own vars merged into the extra vars, as before batching', async () => {
    const f = fakeRunner();
    const b = new InstallBatcher({ max: 1, windowMs: 1000 }, f.run);
    await Promise.all([1, 2].map((n) => b.submit(req(n))));
    expect(f.runs).toHaveLength(2);
    expect(f.runs[0].host?.name).toBe('target');
    expect(f.runs[0].extraVars).toEqual({ telegraf_state: 'present', telegraf_host_id: 'h1' });
    expect(f.runs[0].detached).toBeUndefined();
  });
});
