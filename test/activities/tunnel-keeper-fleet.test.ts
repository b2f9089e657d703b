import net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createTunnelActivities, tunnelStatus } from '../../activities/tunnel';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { sealSecret } from '../../lib/sealed-secret';
import { dataConverterFor } from '../../lib/temporal';
import { workflowIds, type TunnelSpec, type TunnelStats } from '../../workflows/contracts';
import { restartTunnelUpdate, stopTunnelUpdate } from '../../workflows/messages';
import { createFleet, fleetUnsupportedReason, type Fleet, type FleetHost } from '../fleet';
import { eventually, testClient, testStack, uniqueName } from '../support/stack';

// The whole tunnel path for real: keeper workflow on a dev server, the real activity on a worker, sshd on a
// fleet host. What the unit-level tests cannot show: the retry policy reconnecting after a killed session,
// and stop reaching the activity through heartbeats and leaving no listener behind.

const unsupported = fleetUnsupportedReason();
const describeFleet = unsupported ? describe.skip : describe;
if (unsupported) console.warn(`skipping tunnel keeper fleet tests: ${unsupported}`);

const keyring = Keyring.forTests('tunnel-keeper-fleet');
const log = createLogger('test-tunnel-keeper');
const PORT = 18090;

const SEND_PY = `
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall((sys.argv[2] + "\\n").encode())
print(s.recv(4096).decode().strip())
`;

describeFleet('tunnel keeper with the real activity on a fleet host', () => {
  let fleet: Fleet;
  let host: FleetHost;
  let echo: net.Server;
  let echoPort: number;
  let bundle: WorkflowBundleWithSourceMap;
  let client: Client;
  let connection: NativeConnection;

  beforeAll(async () => {
    [fleet, bundle, client, connection] = await Promise.all([
      createFleet(),
      bundleWorkflowCode({
        workflowsPath: require.resolve('../../workflows'),
        failureConverterPath: require.resolve('../../lib/failure-converter'),
        logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: (m) => console.error(m) },
      }),
      testClient(keyring),
      NativeConnection.connect({ address: testStack().temporalAddress }),
    ]);
    host = await fleet.addHost({ name: 'tkeep', topology: 'direct', clientAliveIntervalSec: 1, clientAliveCountMax: 2 });
    echo = net.createServer((s) => {
      s.on('error', () => s.destroy());
      s.on('data', (d) => s.write(`ack:${d.toString().trim()}\n`));
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    echoPort = (echo.address() as net.AddressInfo).port;
  }, 240_000);

  afterAll(async () => {
    await new Promise<void>((r) => (echo ? echo.close(() => r()) : r()));
    await fleet?.destroy();
    await connection?.close();
    await client?.connection.close();
  });

  async function send(msg: string): Promise<string> {
    const r = await fleet.exec(host, `python3 - ${PORT} ${msg}`, { input: SEND_PY, timeoutMs: 15_000 });
    return r.stdout.trim();
  }

  test('connects via ensureTunnel, heals after a killed session, restarts, and stops cleanly', async () => {
    const taskQueue = uniqueName('tunnels-real');
    const activities = createTunnelActivities({ keyring, log, temporal: { client, tunnelTaskQueue: taskQueue } });
    const worker = await Worker.create({
      connection,
      taskQueue,
      workflowBundle: bundle,
      activities: { holdReverseForward: activities.holdReverseForward },
      dataConverter: dataConverterFor(keyring),
      maxHeartbeatThrottleInterval: '500ms', // recommended for the tunnel worker: status and cancellation in < 1 s
      shutdownGraceTime: '5s',
    });
    const tunnelId = uniqueName('real');
    const spec: TunnelSpec = {
      tunnelId,
      ssh: {
        address: host.address,
        port: host.sshPort,
        hostKeySha256: await fleet.hostKeySha256(host),
        credential: { username: host.bootstrapUser, password: sealSecret(keyring, host.bootstrapPassword) },
      },
      bind: { address: '127.0.0.1', port: PORT },
      target: { host: '127.0.0.1', port: echoPort },
      timing: { heartbeatMs: 500, keepaliveIntervalMs: 500, keepaliveCountMax: 3, maxBackoffMs: 1_000 },
    };

    await worker.runUntil(async () => {
      const env = new MockActivityEnvironment();
      const stats = (await env.run(activities.ensureTunnel, spec, { connectDeadlineMs: 30_000 })) as TunnelStats;
      expect(stats).toMatchObject({ connected: true, boundPort: PORT, reconnects: 0 });
      const m1 = `one-${randomBytes(3).toString('hex')}`;
      expect(await send(m1)).toBe(`ack:${m1}`);

      const killedAt = Date.now();
      await fleet.killSshSessions(host);
      const m2 = `two-${randomBytes(3).toString('hex')}`;
      await eventually(async () => (await send(m2)) === `ack:${m2}`, 30_000, 50);
      const healedMs = Date.now() - killedAt;
      const afterKill = await eventually(async () => {
        const s = await tunnelStatus(client, tunnelId);
        return s.state === 'connected' ? s : undefined;
      }, 15_000);
      expect(afterKill.attempt).toBeGreaterThanOrEqual(2);
      expect(afterKill.stats?.reconnects).toBe((afterKill.attempt ?? 1) - 1);
      expect(afterKill.lastFailure).toMatch(/TunnelFailed|ended by the host|closed|ECONNRESET|connection error/);
      console.log(`[tunnel-keeper] killed session → data flowing again after ${healedMs} ms (real retry policy, attempt ${afterKill.attempt})`);

      const handle = client.workflow.getHandle(workflowIds.tunnel(tunnelId));
      expect(await handle.executeUpdate(restartTunnelUpdate)).toEqual({ restarted: true });
      const m3 = `three-${randomBytes(3).toString('hex')}`;
      await eventually(async () => (await send(m3)) === `ack:${m3}`, 30_000, 50);
      const afterRestart = await eventually(async () => {
        const s = await tunnelStatus(client, tunnelId);
        return s.state === 'connected' ? s : undefined;
      }, 15_000);
      expect(afterRestart.attempt).toBe(1); // a fresh activity, not a retry

      const stoppedAt = Date.now();
      expect(await handle.executeUpdate(stopTunnelUpdate)).toEqual({ stopped: true });
      const stopMs = Date.now() - stoppedAt;
      // The update answers after the activity unforwarded: the listener is already gone.
      const ss = await fleet.exec(host, `ss -Hltn 'sport = :${PORT}'`);
      expect(ss.stdout.trim()).toBe('');
      await handle.result();
      expect((await tunnelStatus(client, tunnelId)).state).toBe('stopped');
      console.log(`[tunnel-keeper] stop update answered after ${stopMs} ms`);
    });
  });
});
