import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { ConfigError, loadApiConfig } from '../../lib/config';
import { createLogger } from '../../lib/logging';
import { connectClient } from '../../lib/temporal';
import { createApp, DEFAULT_RATE_LIMIT } from './create-app';

export { createApp } from './create-app';

const log = createLogger('api');

/** AO_API_RATE_LIMIT="<requests>/<seconds>s", e.g. "1200/60s" (per client address). */
export function parseRateLimit(spec: string | undefined): { limit: number; windowMs: number } {
  if (!spec?.trim()) return DEFAULT_RATE_LIMIT;
  const m = /^(\d{1,7})\/(\d{1,6})s$/.exec(spec.trim());
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) {
    throw new ConfigError(`AO_API_RATE_LIMIT must look like "1200/60s", got "${spec}"`);
  }
  return { limit: Number(m[1]), windowMs: Number(m[2]) * 1000 };
}

export async function main(): Promise<INestApplication> {
  const config = loadApiConfig();
  const rateLimit = parseRateLimit(process.env.AO_API_RATE_LIMIT);
  const client = await connectClient(config, config.keys.codec);
  const app = await createApp({ config, client, rateLimit });
  // SIGTERM/SIGINT: stop accepting, finish in-flight requests, then close the Temporal connection.
  app.enableShutdownHooks();
  const server = app.getHttpServer() as import('node:http').Server;
  server.on('close', () => void client.connection.close().catch(() => undefined));
  await app.listen(config.api.port, config.api.host);
  log.info('api listening', { url: `http://${config.api.host}:${config.api.port}`, docs: '/docs', temporal: config.temporal.address });
  return app;
}

if (require.main === module) {
  main().catch((err: Error) => {
    log.error('api failed to start', { error: err instanceof ConfigError ? err.message : `${err.name}: ${err.message}` });
    process.exit(1);
  });
}
