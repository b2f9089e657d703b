import request from 'supertest';
import { Client, Connection } from '@temporalio/client';
import { createApp } from '../../apps/api/create-app';
import type { TrustProxy } from '../../lib/config';
import { dataConverterFor } from '../../lib/temporal';
import { bearer, deadAddress, testConfig, VIEWER_TOKEN } from './harness';

// Rate limiting counts per req.ip. Behind a reverse proxy every request comes from the proxy's address, so
// without AO_API_TRUST_PROXY all clients share one budget; X-Forwarded-For must count only when the proxy is trusted.

async function appWith(trustProxy: TrustProxy | undefined) {
  const address = await deadAddress();
  const config = testConfig(address);
  if (trustProxy !== undefined) config.api.trustProxy = trustProxy;
  const client = new Client({ connection: Connection.lazy({ address }), dataConverter: dataConverterFor(config.keys.codec) });
  const app = await createApp({ config, client, logger: false, docs: false, rateLimit: { limit: 2, windowMs: 60_000 } });
  return {
    get: (xff?: string) => {
      const req = request(app.getHttpServer()).get('/v1/hosts?phase=bogus').set(bearer(VIEWER_TOKEN));
      return (xff ? req.set('X-Forwarded-For', xff) : req).then((r) => r.status);
    },
    close: async () => {
      await app.close();
      await client.connection.close();
    },
  };
}

describe('AO_API_TRUST_PROXY and rate limiting', () => {
  it('unset: X-Forwarded-For is ignored, every client behind the proxy shares the budget', async () => {
    const app = await appWith(undefined);
    try {
      expect([await app.get('203.0.113.1'), await app.get('203.0.113.2'), await app.get('203.0.113.3')]).toEqual([400, 400, 429]);
      // A forged header does not buy a new budget either.
      expect(await app.get('198.51.100.7')).toBe(429);
    } finally {
      await app.close();
    }
  });

  it('one trusted hop: each X-Forwarded-For client has its own budget', async () => {
    const app = await appWith(1);
    try {
      expect([await app.get('203.0.113.1'), await app.get('203.0.113.1'), await app.get('203.0.113.1')]).toEqual([400, 400, 429]);
      expect([await app.get('203.0.113.2'), await app.get('203.0.113.2')]).toEqual([400, 400]);
      // A client cannot escape by prepending its own entry: only the hop the proxy added counts.
      expect(await app.get('198.51.100.7, 203.0.113.1')).toBe(429);
    } finally {
      await app.close();
    }
  });

  it('trusted proxy addresses: loopback (where supertest connects from) is the proxy', async () => {
    const app = await appWith(['127.0.0.1', '::1']);
    try {
      expect([await app.get('203.0.113.9'), await app.get('203.0.113.9'), await app.get('203.0.113.9')]).toEqual([400, 400, 429]);
      expect(await app.get('203.0.113.10')).toBe(400);
    } finally {
      await app.close();
    }
  });

  it('untrusted proxy addresses: the header is ignored', async () => {
    const app = await appWith(['10.9.9.9']);
    try {
      expect([await app.get('203.0.113.1'), await app.get('203.0.113.2'), await app.get('203.0.113.3')]).toEqual([400, 400, 429]);
    } finally {
      await app.close();
    }
  });
});
