import { defaultPayloadConverter } from '@temporalio/common';
import request from 'supertest';
import { EncryptionCodec } from '../../lib/payload-codec';
import { sealSecret } from '../../lib/sealed-secret';
import { bearer, deadAddress, OPERATOR_TOKEN, startTestApp, UI_ORIGIN, VIEWER_TOKEN, WORKER_KEYRING, type TestApp } from './harness';

const validHost = { address: '10.213.1.5', username: 'admin', password: 'Corr3ct-Horse-Battery' };

describe('API auth, codec server, headers', () => {
  let t: TestApp;
  const http = () => request(t.app.getHttpServer());

  beforeAll(async () => {
    t = await startTestApp(await deadAddress(), { timeouts: { rpcMs: 1_000, queryMs: 500, updateMs: 1_000 } });
  });
  afterAll(() => t?.close());

  describe('bearer tokens', () => {
    it('no token → 401 UNAUTHENTICATED with a WWW-Authenticate challenge', async () => {
      const res = await http().get('/v1/hosts');
      expect(res.status).toBe(401);
      expect(res.body).toMatchObject({ statusCode: 401, code: 'UNAUTHENTICATED' });
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    });

    it.each([
      ['an unknown token', 'Bearer not-a-configured-token-000000'],
      ['a prefix of a real token', `Bearer ${OPERATOR_TOKEN.slice(0, -1)}`],
      ['basic auth', `Basic ${Buffer.from('admin:admin').toString('base64')}`],
      ['an empty bearer', 'Bearer '],
    ])('%s → 401', async (_name, header) => {
      const res = await http().get('/v1/tunnels').set('Authorization', header);
      expect(res.status).toBe(401);
      expect(res.body.code).toBe('UNAUTHENTICATED');
    });

    it('viewer may read but not change: POST, PATCH and DELETE → 403 FORBIDDEN', async () => {
      const post = await http().post('/v1/hosts').set(bearer(VIEWER_TOKEN)).send(validHost);
      expect(post.status).toBe(403);
      expect(post.body.code).toBe('FORBIDDEN');
      const del = await http().delete('/v1/tunnels/t-1').set(bearer(VIEWER_TOKEN));
      expect(del.status).toBe(403);
      const approve = await http().post('/v1/hosts/h-1/host-key/approve').set(bearer(VIEWER_TOKEN)).send({});
      expect(approve.status).toBe(403);
      const change = await http().patch('/v1/hosts/h-1').set(bearer(VIEWER_TOKEN)).send({ interval: '30s' });
      expect(change.status).toBe(403);
      const rotate = await http().post('/v1/hosts/h-1/rotate-key').set(bearer(VIEWER_TOKEN));
      expect(rotate.status).toBe(403);
      // A GET passes auth and reaches validation.
      const get = await http().get('/v1/hosts?phase=bogus').set(bearer(VIEWER_TOKEN));
      expect(get.status).toBe(400);
      expect(get.body.code).toBe('VALIDATION_FAILED');
    });

    it('operator passes auth on mutating routes (reaching validation)', async () => {
      const res = await http().post('/v1/hosts').set(bearer(OPERATOR_TOKEN)).send({ ...validHost, port: 'x' });
      expect(res.status).toBe(400);
      expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual(['port']);
    });

    it('health probes are public', async () => {
      expect((await http().get('/healthz')).status).toBe(200);
      const ready = await http().get('/readyz');
      expect(ready.status).toBe(503); // public, and honest: nothing listens at the Temporal address
      expect(ready.body.code).toBe('TEMPORAL_UNAVAILABLE');
    });
  });

  // Roles on /codec and the dev stack's capability path: test/security/sealing.test.ts.
  describe('codec server', () => {
    const plain = defaultPayloadConverter.toPayload({ hello: 'world', n: 1 });
    const wire = (p: typeof plain) => ({
      metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v as Uint8Array).toString('base64')])),
      data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
    });

    it('encode → decode round-trips, and the encoding is our EncryptionCodec', async () => {
      const enc = await http().post('/codec/encode').set(bearer(OPERATOR_TOKEN)).send({ payloads: [wire(plain)] });
      expect(enc.status).toBe(200);
      expect(enc.body.payloads).toHaveLength(1);
      const encoded = enc.body.payloads[0];
      expect(Buffer.from(encoded.metadata.encoding, 'base64').toString()).toBe('binary/encrypted');
      expect(Buffer.from(encoded.data, 'base64').toString()).not.toContain('world');

      // The worker's codec (its master keyring) reads what the codec server wrote with the API's codec keys.
      const [viaLib] = await new EncryptionCodec(WORKER_KEYRING).decode([
        { metadata: { encoding: Buffer.from(encoded.metadata.encoding, 'base64'), 'encryption-key-id': Buffer.from(encoded.metadata['encryption-key-id'], 'base64') }, data: Buffer.from(encoded.data, 'base64') },
      ]);
      expect(defaultPayloadConverter.fromPayload(viaLib)).toEqual({ hello: 'world', n: 1 });

      const dec = await http().post('/codec/decode').set(bearer(VIEWER_TOKEN)).set('X-Namespace', 'default').send(enc.body);
      expect(dec.status).toBe(200);
      expect(dec.body).toEqual({ payloads: [wire(plain)] });
    });

    it('sealed secrets inside a payload stay sealed after decoding', async () => {
      const sealed = sealSecret(t.config.keys.sealer, 'hunter2-plaintext');
      const payload = defaultPayloadConverter.toPayload({ credential: { username: 'admin', password: sealed } });
      const enc = await http().post('/codec/encode').set(bearer(OPERATOR_TOKEN)).send({ payloads: [wire(payload)] });
      const dec = await http().post('/codec/decode').set(bearer(VIEWER_TOKEN)).send(enc.body);
      expect(dec.status).toBe(200);
      const json = Buffer.from(dec.body.payloads[0].data, 'base64').toString();
      expect(JSON.parse(json).credential.password).toEqual(sealed);
      expect(dec.text).not.toContain('hunter2-plaintext');
    });

    it('passes unencrypted payloads through and rejects tampered ones with CODEC_FAILED', async () => {
      const pass = await http().post('/codec/decode').set(bearer(VIEWER_TOKEN)).send({ payloads: [wire(plain)] });
      expect(pass.body).toEqual({ payloads: [wire(plain)] });
      const enc = await http().post('/codec/encode').set(bearer(OPERATOR_TOKEN)).send({ payloads: [wire(plain)] });
      const data = Buffer.from(enc.body.payloads[0].data, 'base64');
      data[20] ^= 0xff;
      const tampered = { payloads: [{ ...enc.body.payloads[0], data: data.toString('base64') }] };
      const res = await http().post('/codec/decode').set(bearer(VIEWER_TOKEN)).send(tampered);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('CODEC_FAILED');
    });

    it('without a token → 401', async () => {
      for (const path of ['/codec/encode', '/codec/decode']) {
        const res = await http().post(path).send({ payloads: [] });
        expect(res.status).toBe(401);
        expect(res.body.code).toBe('UNAUTHENTICATED');
      }
    });

    it('CORS: the UI origin gets a preflight answer with credentials; other origins do not', async () => {
      const pre = await http()
        .options('/codec/decode')
        .set('Origin', UI_ORIGIN)
        .set('Access-Control-Request-Method', 'POST')
        .set('Access-Control-Request-Headers', 'authorization,content-type,x-namespace');
      expect(pre.status).toBe(204);
      expect(pre.headers['access-control-allow-origin']).toBe(UI_ORIGIN);
      expect(pre.headers['access-control-allow-credentials']).toBe('true');
      expect(pre.headers['access-control-allow-headers']).toMatch(/X-Namespace/);
      expect(pre.headers['access-control-allow-headers']).toMatch(/Authorization/);

      const other = await http().options('/codec/decode').set('Origin', 'http://evil.example').set('Access-Control-Request-Method', 'POST');
      expect(other.status).toBe(403);
      expect(other.headers['access-control-allow-origin']).toBeUndefined();

      const post = await http().post('/codec/decode').set('Origin', UI_ORIGIN).set(bearer(VIEWER_TOKEN)).send({ payloads: [] });
      expect(post.status).toBe(200);
      expect(post.headers['access-control-allow-origin']).toBe(UI_ORIGIN);
      // The rest of the API is not offered to the UI origin.
      const api = await http().get('/v1/hosts?phase=bogus').set('Origin', UI_ORIGIN).set(bearer(VIEWER_TOKEN));
      expect(api.headers['access-control-allow-origin']).toBeUndefined();
    });
  });

  describe('headers and docs', () => {
    it('helmet headers are set and Express is not advertised', async () => {
      const res = await http().get('/healthz');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-powered-by']).toBeUndefined();
    });

    it('serves the OpenAPI document and Swagger UI at /docs', async () => {
      const json = await http().get('/docs-json');
      expect(json.status).toBe(200);
      expect(Object.keys(json.body.paths)).toEqual(
        expect.arrayContaining(['/v1/hosts', '/v1/hosts/{id}', '/v1/hosts/{id}/credentials', '/v1/tunnels/{id}/restart', '/codec/decode', '/readyz']),
      );
      expect(json.body.components.schemas.CreateHostDto.properties).toHaveProperty('privateKey');
      const ui = await http().get('/docs');
      expect(ui.status).toBe(200);
      expect(ui.text).toMatch(/swagger/i);
    });
  });
});

describe('rate limiting', () => {
  it('answers 429 RATE_LIMITED past the limit, and never throttles health probes', async () => {
    const t = await startTestApp(await deadAddress(), { rateLimit: { limit: 3, windowMs: 60_000 }, docs: false });
    try {
      const http = () => request(t.app.getHttpServer());
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await http().get('/v1/hosts?phase=bogus').set(bearer(VIEWER_TOKEN))).status);
      expect(statuses).toEqual([400, 400, 400, 429]);
      const limited = await http().get('/v1/tunnels').set(bearer(VIEWER_TOKEN));
      expect(limited.body).toMatchObject({ statusCode: 429, code: 'RATE_LIMITED' });
      // Unauthenticated guessing is throttled too (the throttler runs before auth).
      expect((await http().get('/v1/tunnels')).status).toBe(429);
      for (let i = 0; i < 5; i++) expect((await http().get('/healthz')).status).toBe(200);
    } finally {
      await t.close();
    }
  });
});
