import 'reflect-metadata';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { ApiConfig } from '../../lib/config';
import { Keyring } from '../../lib/keyring';
import { createApp } from './create-app';
import { buildOpenApiDocument } from './openapi-document';

/**
 * Writes the OpenAPI document without a server or Temporal: the app is built (never listening) with a
 * lazy connection that is never used. `node dist/apps/api/openapi.js [out]` (default docs/openapi.json).
 */
export async function exportOpenApi(outFile: string): Promise<void> {
  const config: ApiConfig = {
    temporal: { address: '127.0.0.1:7233', namespace: 'default', onboardingTaskQueue: 'onboarding', tunnelTaskQueue: 'tunnels', tls: false },
    influx: { url: 'http://127.0.0.1:8086', token: 'unused', org: 'unused', bucket: 'unused' },
    keys: Keyring.forTests('openapi-export').apiKeys(),
    api: { host: '127.0.0.1', port: 8080, tokens: new Map(), uiOrigin: 'http://127.0.0.1:8233' },
  };
  const client = new Client({ connection: Connection.lazy({ address: config.temporal.address }) });
  const app = await createApp({ config, client, logger: false, docs: false });
  try {
    const doc = buildOpenApiDocument(app);
    mkdirSync(path.dirname(outFile), { recursive: true });
    writeFileSync(outFile, JSON.stringify(doc, null, 2) + '\n');
  } finally {
    await app.close();
  }
}

if (require.main === module) {
  const repoRoot = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../../..' : '../..');
  const out = path.resolve(process.argv[2] ?? path.join(repoRoot, 'docs/openapi.json'));
  exportOpenApi(out).then(
    () => process.stdout.write(`wrote ${out}\n`),
    (err: Error) => {
      process.stderr.write(`openapi export failed: ${err.message}\n`);
      process.exit(1);
    },
  );
}
