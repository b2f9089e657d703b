import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { MockActivityEnvironment } from '@temporalio/testing';
import { holdReverseForward } from '../../activities/tunnel/hold-reverse-forward';
import { influxTarget } from '../../lib/config';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { sealSecret } from '../../lib/sealed-secret';
import type { TunnelSpec, TunnelStats } from '../../workflows/contracts';
import { createFleet, fleetUnsupportedReason, type Fleet, type FleetHost } from '../fleet';
import { eventually } from '../support/stack';

// Finding 9: with an https INFLUX_URL the tunnel used to pipe Telegraf's plain HTTP into a TLS port. The controller
// end now speaks TLS to InfluxDB (certificate checked) while the host side stays plain HTTP on 127.0.0.1.
const unsupported = fleetUnsupportedReason();
const suite = unsupported ? describe.skip : describe;

const keyring = Keyring.forTests('security-tls');
const log = createLogger('security-tls');

/** A TLS server standing in for an https InfluxDB: answers each line with `tls-ack:<line>`. */
function startTlsStandIn(key: string, cert: string): Promise<{ port: number; received: string[]; close(): Promise<void> }> {
  const received: string[] = [];
  const server = tls.createServer({ key, cert }, (sock) => {
    sock.on('error', () => sock.destroy());
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        received.push(line);
        sock.write(`tls-ack:${line}\n`);
      }
    });
  });
  server.on('tlsClientError', () => undefined);
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as { port: number }).port,
        received,
        close: () => new Promise<void>((r) => server.close(() => r())),
      }),
    );
  });
}

const CLIENT_PY = `
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall((sys.argv[2] + "\\n").encode())
buf = b""
while not buf.endswith(b"\\n"):
    d = s.recv(4096)
    if not d:
        break
    buf += d
sys.stdout.write(buf.decode() or "closed")
`;

suite('tunnel to an https InfluxDB (real sshd, TLS at the controller end)', () => {
  let fleet: Fleet;
  let host: FleetHost;
  let dir: string;
  let cert: string;
  let key: string;
  let standIn: Awaited<ReturnType<typeof startTlsStandIn>>;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ao-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    ], { stdio: 'ignore' });
    cert = readFileSync(path.join(dir, 'cert.pem'), 'utf8');
    key = readFileSync(path.join(dir, 'key.pem'), 'utf8');
    standIn = await startTlsStandIn(key, cert);
    fleet = await createFleet();
    host = await fleet.addHost({ name: 'tls', topology: 'direct' });
  });

  afterAll(async () => {
    await standIn?.close();
    await fleet?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function spec(port: number): TunnelSpec {
    return {
      tunnelId: 'sec-tls',
      ssh: { address: host.address, port: host.sshPort, credential: { username: host.bootstrapUser, password: sealSecret(keyring, host.bootstrapPassword) } },
      bind: { address: '127.0.0.1', port },
      // What the worker builds from INFLUX_URL=https://127.0.0.1:<port>.
      target: influxTarget(`https://127.0.0.1:${standIn.port}`),
      timing: { heartbeatMs: 200 },
    };
  }

  async function throughForward(ca: string | undefined, port: number, msg: string): Promise<string> {
    const env = new MockActivityEnvironment();
    let last: TunnelStats | undefined;
    env.on('heartbeat', (d: TunnelStats) => (last = d));
    const run = env.run(holdReverseForward({ keyring, log, influx: ca ? { ca } : {} }), spec(port), { leaseMs: 60_000 }).catch((e: unknown) => e);
    try {
      await eventually(async () => last?.connected, 20_000, 50);
      const r = await fleet.exec(host, `python3 - ${port} ${msg}`, { input: CLIENT_PY, timeoutMs: 20_000 });
      return r.stdout.trim();
    } finally {
      env.cancel();
      await run;
    }
  }

  it('the https URL makes a TLS target', () => {
    expect(influxTarget('https://influx.example:8086')).toEqual({ host: 'influx.example', port: 8086, tls: true });
    expect(influxTarget('http://influx.example:8086')).toEqual({ host: 'influx.example', port: 8086 });
  });

  it('plain HTTP on the host, TLS with a checked certificate to InfluxDB', async () => {
    expect(await throughForward(cert, 18091, 'write-1')).toBe('tls-ack:write-1');
    expect(standIn.received).toContain('write-1');
  });

  it('a certificate the controller does not trust: the forwarded connection is refused, nothing arrives', async () => {
    const before = standIn.received.length;
    expect(await throughForward(undefined, 18092, 'write-2')).not.toContain('tls-ack');
    expect(standIn.received.length).toBe(before);
  });
});
