import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Server, utils, type AuthContext } from 'ssh2';
import { Keyring } from '../../lib/keyring';
import { sealSecret } from '../../lib/sealed-secret';
import type { SshTarget } from '../../workflows/contracts';
import { dialSsh, fingerprintSha256, normalizeFingerprint, openJumpListener, scanHostKey } from './dialer';
import { failureOf } from '../../test/support/failures';
import { generateEd25519 } from './keys';

// In-process ssh2 servers on loopback: fast checks of pinning, auth mapping and forwarding. The same paths
// against real OpenSSH hosts are in test/activities/ssh.test.ts.

const keyring = Keyring.forTests('ssh-dialer-spec');
const PASSWORD = `'"$()\`; & ü`;

interface FakeServer {
  port: number;
  hostKeySha256: string;
  close(): Promise<void>;
}

function fakeServer(opts: { keyboardOnly?: boolean; allowKey?: string } = {}): Promise<FakeServer> {
  const hostKey = generateEd25519();
  const parsedHost = utils.parseKey(hostKey.private);
  if (parsedHost instanceof Error) throw parsedHost;
  const hostKeySha256 = fingerprintSha256(parsedHost.getPublicSSH());
  const allowed = opts.allowKey ? utils.parseKey(opts.allowKey) : undefined;
  const clients = new Set<{ end(): void }>();
  const server = new Server({ hostKeys: [hostKey.private] }, (conn) => {
    clients.add(conn);
    conn.on('error', () => undefined);
    conn.on('authentication', (ctx: AuthContext) => {
      if (ctx.method === 'keyboard-interactive') {
        return ctx.prompt([{ prompt: 'Password: ', echo: false }], (answers) => (answers[0] === PASSWORD ? ctx.accept() : ctx.reject()));
      }
      if (ctx.method === 'password' && !opts.keyboardOnly) return ctx.password === PASSWORD ? ctx.accept() : ctx.reject();
      if (ctx.method === 'publickey' && allowed && !(allowed instanceof Error)) {
        const same = ctx.key.data.equals(allowed.getPublicSSH());
        if (same && (!ctx.signature || allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true)) return ctx.accept();
        return ctx.reject();
      }
      ctx.reject(opts.keyboardOnly ? ['keyboard-interactive'] : ['password', 'publickey', 'keyboard-interactive']);
    });
    conn.on('ready', () => {
      conn.on('session', (accept) => {
        const session = accept();
        session.on('exec', (acc, _rej, info) => {
          const ch = acc();
          ch.on('error', () => undefined);
          ch.write(`ran:${info.command}`);
          ch.exit(0);
          ch.end();
        });
      });
      // Jump host behaviour: forward to a loopback port.
      conn.on('tcpip', (accept, reject, info) => {
        const sock = net.connect(info.destPort, '127.0.0.1');
        sock.on('error', () => reject?.());
        sock.once('connect', () => {
          const ch = accept();
          ch.on('error', () => sock.destroy());
          sock.pipe(ch).pipe(sock);
        });
      });
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        hostKeySha256,
        close: () =>
          new Promise<void>((r) => {
            for (const c of clients) c.end();
            server.close(() => r());
          }),
      });
    });
  });
}

const passwordTarget = (port: number, extra: Partial<SshTarget> = {}): SshTarget => ({
  address: '127.0.0.1',
  port,
  credential: { username: 'boot', password: sealSecret(keyring, PASSWORD) },
  ...extra,
});


describe('fingerprintSha256', () => {
  it('matches ssh-keygen -lf', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fp-'));
    try {
      const { public: pub } = generateEd25519();
      writeFileSync(path.join(dir, 'k.pub'), pub + '\n');
      const fromKeygen = execFileSync('ssh-keygen', ['-lf', path.join(dir, 'k.pub')]).toString().split(' ')[1];
      const blob = Buffer.from(pub.split(' ')[1], 'base64');
      expect(fingerprintSha256(blob)).toBe(fromKeygen);
      expect(fingerprintSha256(blob)).not.toMatch(/=$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('normalizes pasted fingerprints', () => {
    expect(normalizeFingerprint('abc=')).toBe('SHA256:abc');
    expect(normalizeFingerprint(' SHA256:abc ')).toBe('SHA256:abc');
  });
});

describe('dialSsh against an in-process server', () => {
  let srv: FakeServer;
  beforeAll(async () => {
    srv = await fakeServer();
  });
  afterAll(() => srv.close());

  it('captures the host key on first contact and runs commands', async () => {
    const s = await dialSsh(passwordTarget(srv.port), { keyring });
    try {
      expect(s.hostKeySha256).toBe(srv.hostKeySha256);
      expect(s.hostPublicKey).toMatch(/^ssh-ed25519 /);
      const res = await s.exec('echo hi', { stdin: 'x' });
      expect(res).toMatchObject({ stdout: 'ran:echo hi', code: 0 });
    } finally {
      await s.close();
    }
  });

  it('accepts the pinned key and rejects another one as HostKeyMismatch', async () => {
    const ok = await dialSsh(passwordTarget(srv.port, { hostKeySha256: srv.hostKeySha256 }), { keyring });
    await ok.close();
    const wrong = 'SHA256:' + 'A'.repeat(43);
    const f = await failureOf(dialSsh(passwordTarget(srv.port, { hostKeySha256: wrong }), { keyring }));
    expect(f.type).toBe('HostKeyMismatch');
    expect(f.nonRetryable).toBe(true);
    expect(f.details?.[0]).toMatchObject({ expected: wrong, offered: srv.hostKeySha256, address: '127.0.0.1', port: srv.port });
  });

  it('reports a wrong password as AuthFailed without the password', async () => {
    const t: SshTarget = { ...passwordTarget(srv.port), credential: { username: 'boot', password: sealSecret(keyring, 'nope-wrong') } };
    const f = await failureOf(dialSsh(t, { keyring }));
    expect(f.type).toBe('AuthFailed');
    expect(f.nonRetryable).toBe(true);
    expect(JSON.stringify([f.message, f.details])).not.toContain('nope-wrong');
  });

  it('reports a closed port as retryable HostUnreachable', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const f = await failureOf(dialSsh(passwordTarget(port), { keyring }));
    expect(f.type).toBe('HostUnreachable');
    expect(f.nonRetryable).toBe(false);
  });

  it('reports a silent peer as HostUnreachable after the ready timeout', async () => {
    const accepted = new Set<net.Socket>();
    const silent = net.createServer((s) => {
      accepted.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    try {
      const f = await failureOf(dialSsh(passwordTarget((silent.address() as net.AddressInfo).port), { keyring, readyTimeoutMs: 300 }));
      expect(f.type).toBe('HostUnreachable');
      expect(f.message).toMatch(/timed out/);
    } finally {
      for (const s of accepted) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('scans the host key without logging in and checks the pin', async () => {
    const scanned = await scanHostKey(passwordTarget(srv.port), { keyring });
    expect(scanned.hostKeySha256).toBe(srv.hostKeySha256);
    const f = await failureOf(scanHostKey(passwordTarget(srv.port, { hostKeySha256: 'SHA256:nope' }), { keyring }));
    expect(f.type).toBe('HostKeyMismatch');
  });
});

describe('credentials', () => {
  it('logs in with keyboard-interactive when the server offers only that', async () => {
    const srv = await fakeServer({ keyboardOnly: true });
    try {
      const s = await dialSsh(passwordTarget(srv.port), { keyring });
      await s.close();
      expect(s.hostKeySha256).toBe(srv.hostKeySha256);
    } finally {
      await srv.close();
    }
  });

  it('logs in with an encrypted key and its passphrase; a wrong passphrase is AuthFailed', async () => {
    const k = generateEd25519({ passphrase: 'pass phrase', cipher: 'aes256-ctr', rounds: 16 });
    const srv = await fakeServer({ allowKey: k.public });
    try {
      const cred = { username: 'boot', privateKey: sealSecret(keyring, k.private), passphrase: sealSecret(keyring, 'pass phrase') };
      const s = await dialSsh({ address: '127.0.0.1', port: srv.port, credential: cred }, { keyring });
      await s.close();

      const bad = { ...cred, passphrase: sealSecret(keyring, 'wrong') };
      const f = await failureOf(dialSsh({ address: '127.0.0.1', port: srv.port, credential: bad }, { keyring }));
      expect(f.type).toBe('AuthFailed');
      expect(f.message).toMatch(/passphrase/);
      expect(f.message).not.toContain('PRIVATE KEY');

      const none = { username: 'boot', privateKey: cred.privateKey };
      const f2 = await failureOf(dialSsh({ address: '127.0.0.1', port: srv.port, credential: none }, { keyring }));
      expect(f2.message).toMatch(/no passphrase/);
    } finally {
      await srv.close();
    }
  });

  it('rejects a secret sealed with another keyring as InvalidInput', async () => {
    const other = Keyring.forTests('other');
    const t: SshTarget = { address: '127.0.0.1', port: 1, credential: { username: 'x', password: sealSecret(other, 'p') } };
    const f = await failureOf(dialSsh(t, { keyring }));
    expect(f.type).toBe('InvalidInput');
  });
});

describe('jump hosts', () => {
  let bastion: FakeServer;
  let inner: FakeServer;
  beforeAll(async () => {
    bastion = await fakeServer();
    inner = await fakeServer();
  });
  afterAll(async () => {
    await inner.close();
    await bastion.close();
  });

  it('dials through the jump host, pinning both hops', async () => {
    const t = passwordTarget(inner.port, { via: passwordTarget(bastion.port, { hostKeySha256: bastion.hostKeySha256 }) });
    const s = await dialSsh(t, { keyring });
    try {
      expect(s.hostKeySha256).toBe(inner.hostKeySha256);
      expect(s.viaHostKeySha256).toBe(bastion.hostKeySha256);
      expect((await s.exec('uname')).stdout).toBe('ran:uname');
    } finally {
      await s.close();
    }
  });

  it('names the jump host when its key does not match', async () => {
    const t = passwordTarget(inner.port, { via: passwordTarget(bastion.port, { hostKeySha256: inner.hostKeySha256 }) });
    const f = await failureOf(dialSsh(t, { keyring }));
    expect(f.type).toBe('HostKeyMismatch');
    expect(f.details?.[0]).toMatchObject({ hop: 'via', port: bastion.port, offered: bastion.hostKeySha256 });
  });

  it('serves a local listener forwarded through the jump host', async () => {
    const t = passwordTarget(inner.port, { hostKeySha256: inner.hostKeySha256, via: passwordTarget(bastion.port) });
    const l = await openJumpListener(t, keyring);
    try {
      expect(l.host).toBe('127.0.0.1');
      expect(l.hostKeySha256).toBe(bastion.hostKeySha256);
      expect(l.targetHostKeySha256).toBe(inner.hostKeySha256);
      // Anything that speaks SSH to the listener reaches the inner host.
      const s = await dialSsh(passwordTarget(l.port, { hostKeySha256: inner.hostKeySha256 }), { keyring });
      expect((await s.exec('id')).stdout).toBe('ran:id');
      await s.close();
    } finally {
      await l.close();
    }
  });
});
