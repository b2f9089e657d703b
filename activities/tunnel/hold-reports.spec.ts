import { EventEmitter } from 'node:events';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { sealSecret } from '../../lib/sealed-secret';
import type { TunnelSpec } from '../../workflows/contracts';
import type { TunnelReport } from '../../workflows/host/messages';
import type { SshSession, dialSsh } from '../ssh/dialer';
import { holdReverseForward } from './hold-reverse-forward';

// What the hosts hear from a forward: changes only (up after down, down after up or a first try failing),
// never a report per retry, and nothing for a refusal (the keeper reports that) or a cancellation.

const keyring = Keyring.forTests('hold-reports');
const spec: TunnelSpec = {
  tunnelId: 't1',
  ssh: { address: '10.213.1.1', port: 22, credential: { username: 'cloudroot', privateKey: sealSecret(keyring, 'k') } },
  bind: { address: '127.0.0.1', port: 18086 },
  target: { host: '127.0.0.1', port: 8086 },
  timing: { heartbeatMs: 50 },
};

/** A session whose forward comes up at once; `drop()` ends it as a dead link would. */
function fakeSession() {
  const client = Object.assign(new EventEmitter(), {
    setNoDelay: () => undefined,
    forwardIn: (_a: string, port: number, cb: (err: Error | undefined, port: number) => void) => setImmediate(() => cb(undefined, port)),
    unforwardIn: (_a: string, _p: number, cb: () => void) => cb(),
  });
  const session = { client, address: spec.ssh.address, port: 22, hostKeySha256: 'x', hostPublicKey: 'x', exec: async () => ({}), close: async () => undefined };
  return { session: session as unknown as SshSession, drop: () => client.emit('close') };
}

function run(opts: { attempt: number; continuing?: boolean; dial: typeof dialSsh; leaseMs?: number }) {
  const reports: TunnelReport[] = [];
  const act = holdReverseForward({ keyring, log: createLogger('test'), dial: opts.dial, report: (_ids, r) => reports.push(r) });
  const env = new MockActivityEnvironment({ attempt: opts.attempt });
  const result = env.run(act, spec, { leaseMs: opts.leaseMs ?? 60_000, reportTo: ['h1'], ...(opts.continuing ? { continuing: true } : {}) });
  return { reports, result, env };
}

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
};

describe('holdReverseForward reports to its hosts', () => {
  it('up on a first connect, down when the session dies', async () => {
    const s = fakeSession();
    const r = run({ attempt: 1, dial: async () => s.session });
    await until(() => r.reports.length === 1);
    expect(r.reports.map((x) => x.state)).toEqual(['connected']);
    s.drop();
    await expect(r.result).rejects.toMatchObject({ type: 'TunnelFailed' });
    expect(r.reports.map((x) => x.state)).toEqual(['connected', 'down']);
    expect(r.reports[1]).toMatchObject({ tunnelId: 't1', error: { type: 'TunnelFailed' } });
  });

  it('a retry that fails to connect again is no news; the one that connects is', async () => {
    const failing = run({ attempt: 3, dial: async () => Promise.reject(ApplicationFailure.retryable('cannot reach 10.213.1.1:22: ECONNREFUSED', 'HostUnreachable')) });
    await expect(failing.result).rejects.toBeDefined();
    expect(failing.reports).toEqual([]);
    const s = fakeSession();
    const up = run({ attempt: 4, dial: async () => s.session, leaseMs: 100 });
    await up.result;
    expect(up.reports.map((x) => x.state)).toEqual(['connected']);
  });

  it('the next lease of a forward that stayed up says nothing; a first try that fails says down', async () => {
    const s = fakeSession();
    const next = run({ attempt: 1, continuing: true, dial: async () => s.session, leaseMs: 100 });
    await next.result;
    expect(next.reports).toEqual([]);
    const failing = run({ attempt: 1, continuing: true, dial: async () => Promise.reject(ApplicationFailure.retryable('ECONNREFUSED', 'HostUnreachable')) });
    await expect(failing.result).rejects.toBeDefined();
    expect(failing.reports.map((x) => x.state)).toEqual(['down']);
  });

  it('a refusal and a cancellation are not reported from here', async () => {
    const refused = run({ attempt: 1, dial: async () => Promise.reject(ApplicationFailure.nonRetryable('host key changed', 'HostKeyMismatch')) });
    await expect(refused.result).rejects.toMatchObject({ type: 'HostKeyMismatch' });
    expect(refused.reports).toEqual([]);
    const s = fakeSession();
    const cancelled = run({ attempt: 2, dial: async () => s.session });
    await until(() => cancelled.reports.length === 1);
    cancelled.env.cancel();
    await expect(cancelled.result).rejects.toBeDefined();
    expect(cancelled.reports.map((x) => x.state)).toEqual(['connected']);
  });
});
