import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { holdReverseForward } from '../../activities/tunnel/hold-reverse-forward';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { sealSecret } from '../../lib/sealed-secret';
import type { SshTarget, TunnelSpec, TunnelStats } from '../../workflows/contracts';
import { createFleet, fleetUnsupportedReason, type Fleet, type FleetHost } from '../fleet';
import { eventually } from '../support/stack';

// holdReverseForward against real sshd on fleet hosts, with a local TCP server standing in for InfluxDB.
// Bytes are sent from inside the hosts through the forward; sessions are killed and links silenced to see
// the activity notice, fail retryably, and come back.

const unsupported = fleetUnsupportedReason();
const describeFleet = unsupported ? describe.skip : describe;
if (unsupported) console.warn(`skipping tunnel activity tests: ${unsupported}`);

const keyring = Keyring.forTests('tunnel-activities');
const log = createLogger('test-tunnel');
const hold = holdReverseForward({ keyring, log });

/** Stands in for InfluxDB: answers every line with `ack:<line>` and remembers what arrived. */
interface StandIn {
  port: number;
  received: string[];
  close(): Promise<void>;
}

function startStandIn(): Promise<StandIn> {
  const received: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        received.push(line);
        sock.write(`ack:${line}\n`);
      }
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        received,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

/** Python run inside a host: connect, send one line, print the reply; with HOLD, then wait for the far end to close. */
const CLIENT_PY = `
import socket, sys
addr, port, msg, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "hold"
s = socket.create_connection((addr, port), timeout=10)
s.sendall((msg + "\\n").encode())
buf = b""
while not buf.endswith(b"\\n"):
    d = s.recv(4096)
    if not d:
        break
    buf += d
sys.stdout.write(buf.decode())
sys.stdout.flush()
if hold:
    s.settimeout(60)
    try:
        while s.recv(4096):
            pass
        print("closed")
    except OSError as e:
        print("closed:" + str(e))
`;
import { generateEd25519 } from '../../activities/ssh/keys';

async function sendThrough(fleet: Fleet, host: FleetHost, addr: string, port: number, msg: string, holdOpen = false) {
  const r = await fleet.exec(host, `python3 - ${addr} ${port} ${msg} ${holdOpen ? 'hold' : 'once'}`, {
    input: CLIENT_PY,
    timeoutMs: 70_000,
  });
  return { ...r, lines: r.stdout.split('\n').filter(Boolean) };
}

async function listeners(fleet: Fleet, host: FleetHost, port: number): Promise<string[]> {
  const r = await fleet.exec(host, `ss -Hltn 'sport = :${port}'`);
  return r.stdout.split('\n').filter((l) => l.trim().length > 0);
}

/** Sockets and timers alive in this process (Node's own accounting): what a leaking activity would leave. */
function liveResources(): { sockets: number; timers: number } {
  const r = process.getActiveResourcesInfo();
  return { sockets: r.filter((x) => x === 'TCPSocketWrap').length, timers: r.filter((x) => x === 'Timeout').length };
}

interface Run {
  env: MockActivityEnvironment;
  result: Promise<TunnelStats>;
  /** Settles (never rejects) with the activity's outcome. */
  outcome: Promise<{ ok: true; stats: TunnelStats } | { ok: false; error: unknown; atMs: number }>;
  last(): TunnelStats | undefined;
}

function startHold(spec: TunnelSpec, opts: { attempt?: number; leaseMs?: number } = {}): Run {
  const env = new MockActivityEnvironment({ attempt: opts.attempt ?? 1 });
  let last: TunnelStats | undefined;
  env.on('heartbeat', (d: TunnelStats) => (last = d));
  const result = env.run(hold, spec, { leaseMs: opts.leaseMs ?? 120_000 }) as Promise<TunnelStats>;
  const outcome = result.then(
    (stats) => ({ ok: true as const, stats }),
    (error: unknown) => ({ ok: false as const, error, atMs: Date.now() }),
  );
  return { env, result, outcome, last: () => last };
}

async function connected(run: Run, timeoutMs = 20_000): Promise<TunnelStats> {
  return eventually(async () => {
    const settled = await Promise.race([run.outcome, Promise.resolve(undefined)]);
    if (settled && !settled.ok) throw new Error(`activity failed before connecting: ${(settled.error as Error).message}`);
    return run.last()?.connected ? run.last() : undefined;
  }, timeoutMs, 50);
}

function expectTunnelFailed(error: unknown, fragment: RegExp): ApplicationFailure {
  expect(error).toBeInstanceOf(ApplicationFailure);
  const f = error as ApplicationFailure;
  expect(f.type).toBe('TunnelFailed');
  expect(f.nonRetryable).toBe(false);
  expect(f.message).toMatch(fragment);
  return f;
}

describeFleet('holdReverseForward on fleet hosts', () => {
  let fleet: Fleet;
  let direct: FleetHost;
  let bastion: FleetHost;
  let priv: FleetHost;
  let standIn: StandIn;
  /** A key-only user on `direct` whose key may do nothing but listen on 127.0.0.1:FORWARD_PORT. */
  let restricted: SshTarget;
  let bootstrapOnDirect: SshTarget;
  const FORWARD_PORT = 18086;

  beforeAll(async () => {
    fleet = await createFleet();
    // sshd drops sessions that stop answering after ~2 s, so a port held by a dead session frees up quickly.
    [direct, bastion] = await Promise.all([
      fleet.addHost({ name: 'tdir', topology: 'direct', clientAliveIntervalSec: 1, clientAliveCountMax: 2 }),
      fleet.addHost({ name: 'tbast', topology: 'bastion', clientAliveIntervalSec: 1, clientAliveCountMax: 2 }),
    ]);
    priv = await fleet.addHost({ name: 'tpriv', topology: 'private', bastion });
    standIn = await startStandIn();

    const keys = generateEd25519({ comment: 'tunnel-test' });
    const options = `restrict,port-forwarding,permitlisten="127.0.0.1:${FORWARD_PORT}"`;
    const setup = await fleet.exec(
      direct,
      [
        'set -e',
        'useradd -m -s /bin/bash tunnel',
        'install -d -m 700 -o tunnel -g tunnel /home/tunnel/.ssh',
        'cat > /home/tunnel/.ssh/authorized_keys',
        'chown tunnel:tunnel /home/tunnel/.ssh/authorized_keys',
        'chmod 600 /home/tunnel/.ssh/authorized_keys',
        'passwd -l tunnel >/dev/null',
      ].join('\n'),
      { input: `${options} ${keys.public}\n` },
    );
    if (setup.exitCode !== 0) throw new Error(`creating the tunnel user failed: ${setup.stderr}`);
    const hostKeySha256 = await fleet.hostKeySha256(direct);
    restricted = {
      address: direct.address,
      port: direct.sshPort,
      hostKeySha256,
      credential: { username: 'tunnel', privateKey: sealSecret(keyring, keys.private) },
    };
    bootstrapOnDirect = {
      address: direct.address,
      port: direct.sshPort,
      hostKeySha256,
      credential: { username: direct.bootstrapUser, password: sealSecret(keyring, direct.bootstrapPassword) },
    };
  }, 240_000);

  afterAll(async () => {
    await standIn?.close();
    await fleet?.destroy();
  });

  function directSpec(timing: TunnelSpec['timing'] = {}): TunnelSpec {
    return {
      tunnelId: `t-${randomBytes(4).toString('hex')}`,
      ssh: restricted,
      bind: { address: '127.0.0.1', port: FORWARD_PORT },
      target: { host: '127.0.0.1', port: standIn.port },
      timing: { heartbeatMs: 100, keepaliveIntervalMs: 500, keepaliveCountMax: 2, ...timing },
    };
  }

  test('carries bytes both ways, counts them, and leaves nothing behind when the lease ends', async () => {
    const before = liveResources();
    const run = startHold(directSpec(), { leaseMs: 4_000 });
    const up = await connected(run);
    expect(up).toMatchObject({ connected: true, boundPort: FORWARD_PORT, reconnects: 0, openConnections: 0 });
    expect(await listeners(fleet, direct, FORWARD_PORT)).toHaveLength(1);

    const msg = `hello-${randomBytes(4).toString('hex')}`;
    const r = await sendThrough(fleet, direct, '127.0.0.1', FORWARD_PORT, msg);
    expect(r.lines).toEqual([`ack:${msg}`]);
    expect(standIn.received).toContain(msg);
    const counted = await eventually(async () => {
      const s = run.last();
      return s && s.totalConnections === 1 && s.openConnections === 0 ? s : undefined;
    });
    expect(counted.bytesIn).toBe(msg.length + 1);
    expect(counted.bytesOut).toBe(msg.length + 5);

    const end = await run.outcome;
    expect(end.ok).toBe(true);
    expect(await listeners(fleet, direct, FORWARD_PORT)).toEqual([]);
    await eventually(async () => {
      const now = liveResources();
      return now.sockets <= before.sockets && now.timers <= before.timers;
    }, 10_000);
  });

  test('a killed session fails retryably at once, and the next attempt forwards again', async () => {
    const first = startHold(directSpec());
    await connected(first);
    const killedAt = Date.now();
    // All sessions: the harness's per-user filter misses sshd's bare "sshd: <user>" title of forward-only sessions.
    await fleet.killSshSessions(direct);
    const down = await first.outcome;
    expect(down.ok).toBe(false);
    if (down.ok) return;
    expectTunnelFailed(down.error, /ended by the host|closed|connection error/);
    const detectMs = down.atMs - killedAt;

    // What the activity retry does: the same activity, attempt 2.
    const second = startHold(directSpec(), { attempt: 2 });
    const up = await connected(second);
    expect(up.reconnects).toBe(1);
    const msg = `again-${randomBytes(4).toString('hex')}`;
    expect((await sendThrough(fleet, direct, '127.0.0.1', FORWARD_PORT, msg)).lines).toEqual([`ack:${msg}`]);
    const backMs = Date.now() - killedAt;
    console.log(`[tunnel] session killed → TunnelFailed after ${detectMs} ms; forward carrying data again after ${backMs} ms (without retry backoff)`);
    second.env.cancel();
    await second.outcome;
  });

  test('a session lost after a healthy run ends the activity normally, so the keeper restarts it without backoff', async () => {
    const run = startHold(directSpec({ healthyResetMs: 300 }), { attempt: 5 });
    const up = await connected(run);
    await eventually(async () => Date.now() - (up.connectedSinceMs ?? Date.now()) > 400, 5_000, 50);
    await fleet.killSshSessions(direct);
    const end = await run.outcome;
    expect(end.ok).toBe(true);
    if (!end.ok) return;
    expect(end.stats).toMatchObject({ connected: false });
    expect(end.stats.lastError).toMatch(/ended by the host|closed|connection error/);
    expect(await listeners(fleet, direct, FORWARD_PORT)).toEqual([]);
  });

  test('a silently dropping link is detected by ssh keepalive', async () => {
    const spec = directSpec({ keepaliveIntervalMs: 500, keepaliveCountMax: 2 });
    const run = startHold(spec);
    await connected(run);
    const droppedAt = Date.now();
    await fleet.dropPackets(direct, true);
    let down: Awaited<Run['outcome']>;
    try {
      down = await run.outcome;
    } finally {
      await fleet.dropPackets(direct, false);
    }
    expect(down.ok).toBe(false);
    if (down.ok) return;
    expectTunnelFailed(down.error, /keepalive timeout/);
    console.log(
      `[tunnel] silent drop detected after ${down.atMs - droppedAt} ms (keepalive ${spec.timing!.keepaliveIntervalMs} ms × (${spec.timing!.keepaliveCountMax}+1) = ${(spec.timing!.keepaliveCountMax! + 1) * spec.timing!.keepaliveIntervalMs!} ms)`,
    );
    // The host drops the half-dead session by itself (ClientAliveInterval), freeing the port for the next attempt.
    await eventually(async () => (await listeners(fleet, direct, FORWARD_PORT)).length === 0, 20_000, 200);
  });

  test('a port still held by another session is a retryable "remote port forwarding failed"', async () => {
    const holder = startHold(directSpec());
    await connected(holder);
    const second = await startHold(directSpec()).outcome;
    expect(second.ok).toBe(false);
    if (!second.ok) expectTunnelFailed(second.error, /remote port forwarding failed/);
    // The holder is unaffected.
    const msg = `holder-${randomBytes(4).toString('hex')}`;
    expect((await sendThrough(fleet, direct, '127.0.0.1', FORWARD_PORT, msg)).lines).toEqual([`ack:${msg}`]);
    holder.env.cancel();
    await holder.outcome;
  });

  test('a key restricted with permitlisten cannot listen anywhere else', async () => {
    const spec = { ...directSpec(), bind: { address: '127.0.0.1', port: FORWARD_PORT + 1 } };
    const out = await startHold(spec).outcome;
    expect(out.ok).toBe(false);
    if (!out.ok) expectTunnelFailed(out.error, /remote port forwarding failed/);
    expect(await listeners(fleet, direct, FORWARD_PORT + 1)).toEqual([]);
  });

  test('cancellation unforwards, closes piped connections and leaks nothing', async () => {
    const before = liveResources();
    const run = startHold(directSpec());
    await connected(run);
    const msg = `long-${randomBytes(4).toString('hex')}`;
    const holding = sendThrough(fleet, direct, '127.0.0.1', FORWARD_PORT, msg, true);
    await eventually(async () => run.last()?.openConnections === 1);

    run.env.cancel();
    const end = await run.outcome;
    expect(end.ok).toBe(false);
    if (!end.ok) expect(end.error).toBeInstanceOf(CancelledFailure);
    const client = await holding;
    expect(client.lines[0]).toBe(`ack:${msg}`);
    expect(client.lines[1]).toMatch(/^closed/);
    // Unforwarded before the activity returned: no wait for sshd to notice.
    expect(await listeners(fleet, direct, FORWARD_PORT)).toEqual([]);
    await eventually(async () => {
      const now = liveResources();
      return now.sockets <= before.sockets && now.timers <= before.timers;
    }, 10_000);
  });

  test('a password login works too (bootstrap user, unrestricted)', async () => {
    const run = startHold({ ...directSpec(), ssh: bootstrapOnDirect });
    await connected(run);
    const msg = `pw-${randomBytes(4).toString('hex')}`;
    expect((await sendThrough(fleet, direct, '127.0.0.1', FORWARD_PORT, msg)).lines).toEqual([`ack:${msg}`]);
    run.env.cancel();
    await run.outcome;
  });

  test('a proxy forward on the bastion\'s private address serves hosts of the private network', async () => {
    expect(bastion.proxyAddress ?? priv.gateway).toBeTruthy();
    const proxyAddress = bastion.proxyAddress ?? priv.gateway;
    const spec: TunnelSpec = {
      tunnelId: `proxy-${randomBytes(4).toString('hex')}`,
      ssh: {
        address: bastion.address,
        port: bastion.sshPort,
        hostKeySha256: await fleet.hostKeySha256(bastion),
        credential: { username: bastion.bootstrapUser, password: sealSecret(keyring, bastion.bootstrapPassword) },
      },
      bind: { address: proxyAddress, port: FORWARD_PORT },
      target: { host: '127.0.0.1', port: standIn.port },
      timing: { heartbeatMs: 100 },
    };
    const run = startHold(spec);
    await connected(run);
    expect(await listeners(fleet, bastion, FORWARD_PORT)).toEqual([expect.stringContaining(`${proxyAddress}:${FORWARD_PORT}`)]);
    const msg = `private-${randomBytes(4).toString('hex')}`;
    const r = await sendThrough(fleet, priv, proxyAddress, FORWARD_PORT, msg);
    expect(r.lines).toEqual([`ack:${msg}`]);
    run.env.cancel();
    await run.outcome;
    expect(await listeners(fleet, bastion, FORWARD_PORT)).toEqual([]);
  });
});
