import { createServer, type Socket } from 'node:net';
import { MockActivityEnvironment } from '@temporalio/testing';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { sealSecret } from '../../lib/sealed-secret';
import { installAgent } from './install-agent';
import { whileHeartbeating } from '../heartbeat';
import { generateEd25519 } from '../ssh/keys';

// installAgent has a 20 s heartbeat timeout; before ansible-playbook heartbeats on its own, the activity scans the
// host key (or opens a jump listener), which takes as long as a slow host makes it. It must heartbeat throughout.

const keyring = Keyring.forTests('install-heartbeat');

describe('whileHeartbeating', () => {
  it('heartbeats at once and then every interval until the work settles', async () => {
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const result = await env.run(() => whileHeartbeating(new Promise((r) => setTimeout(() => r('done'), 130)), { step: 'slow' }, 40));
    expect(result).toBe('done');
    expect(beats.length).toBeGreaterThanOrEqual(3);
    expect(beats[0]).toEqual({ step: 'slow', elapsedMs: 0 });
    const count = beats.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(beats.length).toBe(count); // stopped with the work
  });

  it('passes rejections through and works outside an activity', async () => {
    await expect(whileHeartbeating(Promise.reject(new Error('boom')), { step: 'x' })).rejects.toThrow('boom');
    await expect(whileHeartbeating(Promise.resolve(7), { step: 'x' })).resolves.toBe(7);
  });
});

describe('installAgent heartbeats before ansible-playbook runs', () => {
  it('while the host key scan waits on a host that accepts TCP and says nothing', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const key = generateEd25519();
    const env = new MockActivityEnvironment();
    const steps: string[] = [];
    let scanning!: () => void;
    const scanStarted = new Promise<void>((r) => (scanning = r));
    env.on('heartbeat', (d: { step?: string }) => {
      steps.push(String(d?.step));
      if (d?.step === 'host-key-scan') scanning();
    });
    const deps = { keyring, log: createLogger('test'), influx: { url: 'http://127.0.0.1:1', token: 't:t', org: 'o', bucket: 'b' } };
    const run = env.run(installAgent(deps), {
      hostId: 'heartbeat-1',
      target: {
        address: '127.0.0.1',
        port,
        hostKeySha256: 'SHA256:' + 'A'.repeat(43),
        credential: { username: 'cloudroot', privateKey: sealSecret(keyring, key.private) },
      },
      agent: { mode: 'repo' as const },
      outputUrl: 'http://127.0.0.1:8086',
    });
    const outcome = run.then(
      () => 'resolved',
      (e: Error) => e,
    );
    await scanStarted;
    // The "host" hangs up: the scan fails, the activity with it, and the heartbeats stop.
    for (const s of sockets) s.destroy();
    silent.close();
    expect(await outcome).toBeInstanceOf(Error);
    expect(steps.slice(0, 2)).toEqual(['validate', 'host-key-scan']);
  });
});
