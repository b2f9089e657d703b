import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { apiKeyEnv } from '../../lib/config';
import { Keyring } from '../../lib/keyring';
import { dataConverterFor } from '../../lib/temporal';
import { repoRoot, ensureToolchain } from './toolchain';
import { startInfluxd, startTemporalDevServer } from './services';
import { startProcess, waitFor, type ManagedProcess } from './processes';
import { runDemo } from './demo';

/**
 * `npm start`: the whole stack on embedded defaults — Temporal dev server + Web UI, InfluxDB, worker, API —
 * and, as root on Linux, a demo fleet it onboards. Ctrl-C stops every child and tears the fleet down.
 */
interface Options {
  dataDir: string;
  temporalPort: number;
  uiPort: number;
  influxPort: number;
  influxRpcPort: number;
  apiPort: number;
  demo: boolean;
}

function parseArgs(argv: string[]): Options {
  const num = (name: string, fallback: number) => {
    const v = process.env[name];
    const n = v ? Number(v) : fallback;
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${name} must be a TCP port, got "${v}"`);
    return n;
  };
  return {
    dataDir: path.resolve(process.env.AO_DATA_DIR ?? path.join(repoRoot(), '.data', 'devstack')),
    temporalPort: num('AO_TEMPORAL_PORT', 7233),
    uiPort: num('AO_UI_PORT', 8233),
    influxPort: num('AO_INFLUX_PORT', 8086),
    influxRpcPort: num('AO_INFLUX_RPC_PORT', 8088),
    apiPort: num('AO_API_PORT', 8080),
    demo: !argv.includes('--no-demo') && process.env.AO_DEMO !== '0',
  };
}

/** Secrets of the dev stack, made once and kept (0600) in the data dir so restarts keep working. */
function devSecrets(dataDir: string): { masterKeys: string; operatorToken: string; viewerToken: string } {
  const file = path.join(dataDir, 'secrets.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8'));
  const secrets = {
    masterKeys: `dev1:${randomBytes(32).toString('base64')}`,
    operatorToken: `op-${randomBytes(18).toString('base64url')}`,
    viewerToken: `view-${randomBytes(18).toString('base64url')}`,
  };
  writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  const tools = ensureToolchain();
  const secrets = devSecrets(opts.dataDir);
  const root = repoRoot();
  const children: ManagedProcess[] = [];
  let teardownDemo: (() => Promise<void>) | undefined;
  let stopping = false;

  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping the stack…');
    await teardownDemo?.().catch((e) => console.error(`demo teardown: ${(e as Error).message}`));
    // Reverse order: API and worker first (they drain), then the servers they use.
    for (const child of [...children].reverse()) await child.stop().catch(() => undefined);
    console.log('stopped.');
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  try {
    const apiUrl = `http://127.0.0.1:${opts.apiPort}`;
    const keyring = Keyring.parse(process.env.AO_MASTER_KEYS ?? secrets.masterKeys);
    // The dev server's UI has no login to forward a token: its codec URL carries a fresh random secret instead,
    // which opens decode (never encode) on that one path, for this run only.
    const devCodecSecret = randomBytes(32).toString('base64url');
    const temporal = await startTemporalDevServer({
      binary: tools.temporal,
      dataDir: opts.dataDir,
      port: opts.temporalPort,
      uiPort: opts.uiPort,
      dbFile: path.join(opts.dataDir, 'temporal.sqlite'),
      codecEndpoint: `${apiUrl}/codec/dev/${devCodecSecret}`,
    });
    children.push(temporal);
    const influx = await startInfluxd({
      binary: tools.influxd,
      dataDir: path.join(opts.dataDir, 'influxdb'),
      httpPort: opts.influxPort,
      rpcPort: opts.influxRpcPort,
    });
    children.push(influx);

    // Key variables are set per process below, never inherited: the API must not see AO_MASTER_KEYS.
    const {
      AO_MASTER_KEYS: _masterKeys,
      AO_CODEC_KEYS: _codecKeys,
      AO_SEAL_PUBLIC_KEYS: _sealKeys,
      AO_DEV_CODEC_SECRET: _devSecret,
      AO_DEV_CODEC_WITHOUT_AUTH: _oldDevBypass,
      ...inherited
    } = process.env;
    const env: NodeJS.ProcessEnv = {
      ...inherited,
      TEMPORAL_ADDRESS: temporal.address,
      INFLUX_URL: influx.url,
      INFLUX_BUCKET: `${influx.database}/autogen`,
      INFLUX_TOKEN: process.env.INFLUX_TOKEN ?? 'telegraf:telegraf',
      AO_API_TOKENS: process.env.AO_API_TOKENS ?? `${secrets.operatorToken}:operator,${secrets.viewerToken}:viewer`,
      AO_API_PORT: String(opts.apiPort),
      AO_UI_ORIGIN: temporal.uiUrl,
      TELEGRAF_PATH: tools.telegraf,
    };
    const worker = startProcess('worker', process.execPath, [path.join(root, 'dist', 'apps', 'worker', 'main.js')], {
      logFile: path.join(opts.dataDir, 'worker.log'),
      env: { ...env, AO_MASTER_KEYS: keyring.toSpec() },
    });
    children.push(worker);
    const api = startProcess('api', process.execPath, [path.join(root, 'dist', 'apps', 'api', 'main.js')], {
      logFile: path.join(opts.dataDir, 'api.log'),
      // Derived keys only: the API seals to the workers' public keys and cannot open what it sealed.
      env: { ...env, ...apiKeyEnv(keyring), AO_API_HOST: '127.0.0.1', AO_DEV_CODEC_SECRET: devCodecSecret },
    });
    children.push(api);
    await waitFor(`API on ${apiUrl}`, async () => (await fetch(`${apiUrl}/healthz`)).ok, 60_000, api.exited);

    // Smoke: a workflow that needs the worker's workflow and activity sides to answer.
    const connection = await Connection.connect({ address: temporal.address });
    const client = new Client({ connection, dataConverter: dataConverterFor(keyring) });
    const smoke = await client.workflow.execute('smokeTest', {
      taskQueue: process.env.AO_ONBOARDING_TASK_QUEUE ?? 'onboarding',
      workflowId: `smoke/${Date.now()}`,
      workflowExecutionTimeout: '60s',
    });
    await connection.close();

    console.log(
      [
        '',
        'agent-onboarding dev stack is up',
        `  Temporal gRPC   ${temporal.address}`,
        `  Temporal UI     ${temporal.uiUrl}`,
        `  InfluxDB        ${influx.url} (database ${influx.database})`,
        `  API             ${apiUrl}   (OpenAPI: ${apiUrl}/docs)`,
        `  API tokens      ${process.env.AO_API_TOKENS ? 'from AO_API_TOKENS' : `operatorToken / viewerToken in ${path.join(opts.dataDir, 'secrets.json')}`}`,
        `                  export AO_API_TOKEN=$(node -p "require('${path.join(opts.dataDir, 'secrets.json')}').operatorToken")`,
        `  smoke workflow  ${smoke.workflow}, answered by worker pid ${smoke.worker.pid}`,
        `  logs and state  ${opts.dataDir}`,
        '',
      ].join('\n'),
    );

    if (opts.demo) {
      const demo = await runDemo({ apiUrl, operatorToken: secrets.operatorToken, influxPort: opts.influxPort, dataDir: opts.dataDir, env });
      teardownDemo = demo?.teardown;
    }
    console.log('Ctrl-C stops everything.');
    // Any child dying on its own is a failure of the stack: stop the rest and say which.
    const dead = await Promise.race(children.map((c) => c.exited.then((code) => ({ c, code }))));
    if (!stopping) {
      console.error(`${dead.c.name} exited (code ${dead.code}); see ${dead.c.logFile}`);
      await stopAll(1);
    }
  } catch (err) {
    console.error(`npm start failed: ${(err as Error).message}`);
    for (const c of children) console.error(`  ${c.name} log: ${c.logFile}`);
    await stopAll(1);
  }
}

void main();
