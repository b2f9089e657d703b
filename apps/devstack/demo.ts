import { cleanupStale, createFleet, fleetUnsupportedReason, type Fleet, type FleetHost } from '../../test/fleet';
import { followOnboarding } from '../cli/progress';
import { ApiClient } from '../cli/api-client';
import { summarizeHostPoints } from '../../activities/metrics/influx-query';

/**
 * The demo fleet `npm start` onboards (root on Linux): one host per topology, each through the API —
 *   demo-direct:  the controller reaches its sshd; it cannot reach InfluxDB → a remote forward on the host;
 *   demo-private: only its bastion reaches it → control path through the bastion, data through a forward on it;
 *   demo-reach:   it reaches InfluxDB itself → no tunnel.
 */
export async function runDemo(opts: {
  apiUrl: string;
  operatorToken: string;
  influxPort: number;
  dataDir: string;
  env: NodeJS.ProcessEnv;
}): Promise<{ teardown: () => Promise<void> } | undefined> {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) {
    console.log('demo fleet skipped: it needs root on Linux (network namespaces). `npm start -- --no-demo` hides this.');
    return undefined;
  }
  const unsupported = fleetUnsupportedReason();
  if (unsupported) {
    console.log(`demo fleet skipped: ${unsupported}`);
    return undefined;
  }
  await cleanupStale('ao-demo');
  const fleet: Fleet = await createFleet({ runId: 'demo' });
  const teardown = () => fleet.destroy();
  try {
    console.log('demo fleet: creating three test hosts (direct, private behind a bastion, reachable-influx)…');
    const direct = await fleet.addHost({ name: 'direct', topology: 'direct' });
    const bastion = await fleet.addHost({ name: 'bastion', topology: 'bastion' });
    const priv = await fleet.addHost({ name: 'private', topology: 'private', bastion });
    const reach = await fleet.addHost({
      name: 'reach',
      topology: 'reachable-influx',
      influxTarget: { host: '127.0.0.1', port: opts.influxPort },
    });

    const api = new ApiClient(opts.apiUrl, opts.operatorToken);
    const login = (h: FleetHost) => ({ address: h.address, port: h.sshPort, username: h.bootstrapUser, password: h.bootstrapPassword });
    const requests = [
      { hostId: 'demo-direct', ...login(direct), dataPath: 'tunnel' },
      {
        hostId: 'demo-private',
        ...login(priv),
        bastion: login(bastion),
        dataPath: 'proxy',
        proxyBindAddress: priv.proxyAddress,
      },
      { hostId: 'demo-reach', ...login(reach), dataPath: 'direct', influxUrl: reach.influxUrl },
    ];
    for (const body of requests) await api.post('/v1/hosts', body);
    // One line per step change of each host (three hosts at once: a redrawn table would fight itself).
    const out = { write: (s: string) => process.stdout.write(s), isTTY: false };
    const results = await Promise.all(requests.map((r) => followOnboarding(api, r.hostId, { out, timeoutMs: 10 * 60_000 })));

    console.log('\ndemo summary (points counted in InfluxDB for each host_id over the last 10 minutes)');
    const influx = { url: opts.env.INFLUX_URL!, token: opts.env.INFLUX_TOKEN!, org: 'agent-onboarding', bucket: opts.env.INFLUX_BUCKET! };
    for (const r of results) {
      const points = await summarizeHostPoints(influx, r.hostId, Date.now() - 10 * 60_000).catch(() => ({ count: 0 }));
      const error = r.lastError && r.phase !== 'healthy' ? `  (${r.lastError.type}: ${r.lastError.message})` : '';
      console.log(`  ${r.hostId.padEnd(14)} ${r.phase.padEnd(10)} points: ${String(points.count).padStart(6)}${error}`);
    }
    console.log('');
    return { teardown };
  } catch (err) {
    console.error(`demo failed: ${(err as Error).message}`);
    return { teardown };
  }
}
