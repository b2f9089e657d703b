import { createServer } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import { Client, Connection } from '@temporalio/client';
import type { ApiConfig } from '../../lib/config';
import { Keyring } from '../../lib/keyring';
import { dataConverterFor } from '../../lib/temporal';
import { createApp, type CreateAppOptions } from '../../apps/api/create-app';

export const OPERATOR_TOKEN = 'op-token-0123456789abcdef0123';
export const VIEWER_TOKEN = 'viewer-token-0123456789abcdef';
export const UI_ORIGIN = 'http://127.0.0.1:8233';

/**
 * The workers' master keys in API tests. The API itself never gets them: its config holds only the keys derived
 * for it (codec keys and sealing public keys), as in production. Tests use this to play the worker.
 */
export const WORKER_KEYRING = Keyring.forTests('api');

export function testConfig(address: string, overrides: { namespace?: string; onboardingTaskQueue?: string; devCodecSecret?: string } = {}): ApiConfig {
  return {
    temporal: {
      address,
      namespace: overrides.namespace ?? 'default',
      onboardingTaskQueue: overrides.onboardingTaskQueue ?? 'api-test-onboarding',
      tunnelTaskQueue: 'api-test-tunnels',
      tls: false,
    },
    influx: { url: 'http://127.0.0.1:8086', token: 'telegraf:telegraf', org: 'agent-onboarding', bucket: 'telegraf/autogen' },
    keys: WORKER_KEYRING.apiKeys(),
    api: {
      host: '127.0.0.1',
      port: 0,
      tokens: new Map([
        [OPERATOR_TOKEN, 'operator'],
        [VIEWER_TOKEN, 'viewer'],
      ]),
      uiOrigin: UI_ORIGIN,
      ...(overrides.devCodecSecret ? { devCodecSecret: overrides.devCodecSecret } : {}),
    },
  };
}

/** A loopback port nobody listens on: bind, note the port, close. */
export async function deadAddress(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `127.0.0.1:${port}`;
}

export interface TestApp {
  app: INestApplication;
  client: Client;
  config: ApiConfig;
  close(): Promise<void>;
}

/** The app over a lazy connection: nothing is dialled until a request reaches Temporal. */
export async function startTestApp(
  address: string,
  opts: Partial<Omit<CreateAppOptions, 'config' | 'client'>> & { configOverrides?: Parameters<typeof testConfig>[1] } = {},
): Promise<TestApp> {
  const config = testConfig(address, opts.configOverrides);
  const client = new Client({
    connection: Connection.lazy({ address }),
    namespace: config.temporal.namespace,
    dataConverter: dataConverterFor(config.keys.codec),
  });
  const app = await createApp({ logger: false, ...opts, config, client });
  return {
    app,
    client,
    config,
    close: async () => {
      await app.close();
      await client.connection.close();
    },
  };
}

export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
