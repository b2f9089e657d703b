import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { startProcess, tcpOpen, waitFor, type ManagedProcess } from './processes';

export interface TemporalDevServer extends ManagedProcess {
  address: string;
  uiUrl?: string;
}

/** The Temporal CLI dev server with our search attributes registered; state in `dbFile` when given. */
export async function startTemporalDevServer(opts: {
  binary: string;
  dataDir: string;
  port: number;
  uiPort?: number; // absent: headless
  dbFile?: string;
  codecEndpoint?: string;
  ip?: string;
}): Promise<TemporalDevServer> {
  mkdirSync(opts.dataDir, { recursive: true });
  const ip = opts.ip ?? '127.0.0.1';
  const args = ['server', 'start-dev', '--ip', ip, '--port', String(opts.port), '--log-level', 'error'];
  for (const [name, type] of SEARCH_ATTRIBUTES) args.push('--search-attribute', `${name}=${type}`);
  if (opts.dbFile) args.push('--db-filename', opts.dbFile);
  if (opts.uiPort) args.push('--ui-port', String(opts.uiPort));
  else args.push('--headless');
  if (opts.codecEndpoint) args.push('--ui-codec-endpoint', opts.codecEndpoint);
  const proc = startProcess('temporal', opts.binary, args, { logFile: path.join(opts.dataDir, 'temporal.log') });
  const address = `${ip}:${opts.port}`;
  await waitFor(
    `Temporal dev server on ${address}`,
    async () => {
      const conn = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await conn.workflowService.getSystemInfo({});
        return true;
      } finally {
        await conn.close();
      }
    },
    60_000,
    proc.exited,
  );
  return { ...proc, address, uiUrl: opts.uiPort ? `http://${ip}:${opts.uiPort}` : undefined };
}

export interface InfluxServer extends ManagedProcess {
  url: string;
  database: string;
}

/** InfluxDB 1.8 with the v2-compatible API (flux on), auth off, a database for Telegraf. */
export async function startInfluxd(opts: { binary: string; dataDir: string; httpPort: number; rpcPort: number; database?: string }): Promise<InfluxServer> {
  const dir = path.resolve(opts.dataDir);
  mkdirSync(dir, { recursive: true });
  const database = opts.database ?? 'telegraf';
  const conf = path.join(dir, 'influxdb.conf');
  writeFileSync(
    conf,
    [
      'reporting-disabled = true',
      `bind-address = "127.0.0.1:${opts.rpcPort}"`,
      '[meta]', `  dir = "${dir}/meta"`,
      '[data]', `  dir = "${dir}/data"`, `  wal-dir = "${dir}/wal"`, '  query-log-enabled = false',
      '[http]', '  enabled = true', `  bind-address = "127.0.0.1:${opts.httpPort}"`, '  flux-enabled = true',
      '  auth-enabled = false', '  log-enabled = false',
      '[monitor]', '  store-enabled = false',
      '[continuous_queries]', '  enabled = false',
      '[logging]', '  level = "warn"',
      '',
    ].join('\n'),
  );
  const proc = startProcess('influxd', opts.binary, ['run', '-config', conf], { logFile: path.join(dir, 'influxd.log') });
  const url = `http://127.0.0.1:${opts.httpPort}`;
  await waitFor(`InfluxDB on ${url}`, async () => (await fetch(`${url}/ping`)).status === 204, 60_000, proc.exited);
  const res = await fetch(`${url}/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `q=${encodeURIComponent(`CREATE DATABASE "${database}"`)}`,
  });
  if (!res.ok) throw new Error(`InfluxDB: CREATE DATABASE failed: ${res.status} ${await res.text()}`);
  return { ...proc, url, database };
}

export { tcpOpen };
