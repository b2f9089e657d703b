import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureToolchain } from '../../apps/devstack/toolchain';
import { freePort } from '../../apps/devstack/processes';
import { startInfluxd, startTemporalDevServer, type InfluxServer, type TemporalDevServer } from '../../apps/devstack/services';

// One Temporal dev server and one InfluxDB for the whole run (the SDK's own test-server start has a fixed
// 5 s limit that a loaded 2-core machine misses). Tests connect through the variables set here.
declare global {
   
  var __aoStack: { temporal: TemporalDevServer; influx: InfluxServer; dir: string } | undefined;
}

export default async function globalSetup(): Promise<void> {
  const tools = ensureToolchain();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ao-test-stack-'));
  const temporal = await startTemporalDevServer({ binary: tools.temporal, dataDir: dir, port: await freePort() });
  const influx = await startInfluxd({
    binary: tools.influxd,
    dataDir: path.join(dir, 'influx'),
    httpPort: await freePort(),
    rpcPort: await freePort(),
  });
  globalThis.__aoStack = { temporal, influx, dir };
  process.env.TEMPORAL_ADDRESS = temporal.address;
  process.env.INFLUX_URL = influx.url;
  process.env.INFLUX_BUCKET = `${influx.database}/autogen`;
  process.env.INFLUX_TOKEN = process.env.INFLUX_TOKEN ?? 'telegraf:telegraf';
  process.env.TEMPORAL_CLI_PATH = tools.temporal;
  process.env.TELEGRAF_PATH = tools.telegraf;
  process.env.INFLUXD_PATH = tools.influxd;
}
