import { KeyObject, randomBytes } from 'node:crypto';
import type { INestApplication } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { decodeArrayFromPayloads } from '@temporalio/common/lib/internal-non-workflow';
import request from 'supertest';
import { createApp } from '../../apps/api/create-app';
import { APP_CONFIG } from '../../apps/api/temporal/temporal.module';
import { apiKeyEnv, loadApiConfig, type ApiConfig } from '../../lib/config';
import { Keyring } from '../../lib/keyring';
import { EncryptionCodec } from '../../lib/payload-codec';
import { sealSecret, unsealSecret } from '../../lib/sealed-secret';
import { dataConverterFor } from '../../lib/temporal';
import type { OnboardHostInput, SealedSecret } from '../../workflows/contracts';
import { bearer, deadAddress, OPERATOR_TOKEN, startTestApp, UI_ORIGIN, VIEWER_TOKEN } from '../api/harness';
import { testStack, uniqueName } from '../support/stack';
import '../support/quiet-runtime';

// Security finding 5: the internet-facing API must not be able to open what it seals. The API is configured as in
// production (only AO_CODEC_KEYS and AO_SEAL_PUBLIC_KEYS, derived from the master keys), runs against the real
// Temporal dev server, and seals a host's passwords into the workflow input it starts; only the workers'
// keyring opens them. Also: who may encode on /codec, and the dev stack's capability URL.

const PASSWORD = 'Sealing-Test-Passw0rd-Plaintext';
const BASTION_PASSWORD = 'Sealing-Test-Bastion-Passw0rd';

// The workers' master keys: two, as after a rotation (k2 newest).
const MASTER = { k2: randomBytes(32), k1: randomBytes(32) };
const workerKeyring = Keyring.parse(`k2:${MASTER.k2.toString('base64')},k1:${MASTER.k1.toString('base64')}`);

/** Every byte string that would let its holder open a sealed secret (v2 private scalars, v1 keys, master keys). */
const OPENING_KEYS: Buffer[] = workerKeyring.ids.flatMap((id) => [
  MASTER[id as keyof typeof MASTER],
  workerKeyring.derive('secret-seal', id),
  workerKeyring.derive('secret-seal-x25519', id),
]);

/**
 * Walks an object graph breadth first (own properties, arrays, maps, sets; never getters) looking for a master
 * `Keyring`, an X25519 private key object, or the bytes of any of `needles` (raw, or as base64/base64url/hex).
 */
function findKeyMaterial(root: unknown, needles: Buffer[] = OPENING_KEYS): string[] {
  const seen = new Set<unknown>();
  const hits: string[] = [];
  const texts = needles.flatMap((k) => [k.toString('base64'), k.toString('base64url'), k.toString('hex')]);
  const queue: Array<[unknown, string, number]> = [[root, '$', 0]];
  for (let next = queue.shift(); next; next = queue.shift()) {
    const [v, path, depth] = next;
    if (typeof v === 'string') {
      if (texts.some((t) => v.includes(t))) hits.push(`${path}: key text`);
      continue;
    }
    if (v === null || (typeof v !== 'object' && typeof v !== 'function') || seen.has(v) || depth > 24) continue;
    seen.add(v);
    if (v instanceof Keyring) {
      hits.push(`${path}: Keyring`);
      continue;
    }
    if (v instanceof KeyObject) {
      if (v.type === 'private') hits.push(`${path}: private KeyObject`);
      continue;
    }
    if (v instanceof Uint8Array) {
      const buf = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      if (needles.some((k) => buf.includes(k))) hits.push(`${path}: key bytes`);
      continue;
    }
    // (A class's prototype is `instanceof Map` without being one: only real maps and sets are iterated.)
    if (v instanceof Map && isReal(() => Map.prototype.entries.call(v))) {
      for (const [k, val] of v) queue.push([k, `${path}<key>`, depth + 1], [val, `${path}[${String(k)}]`, depth + 1]);
    }
    if (v instanceof Set && isReal(() => Set.prototype.values.call(v))) for (const val of v) queue.push([val, `${path}<item>`, depth + 1]);
    for (const name of Object.getOwnPropertyNames(v)) {
      const desc = Object.getOwnPropertyDescriptor(v, name);
      if (desc && 'value' in desc) queue.push([desc.value, `${path}.${name}`, depth + 1]);
    }
  }
  return hits;
}

/** Every provider, controller, guard and pipe instance of the app (Nest keeps them behind getters and WeakMaps). */
function nestInstances(app: INestApplication): unknown[] {
  return [...app.get(ModulesContainer).values()].flatMap((m) =>
    [...m.providers.values(), ...m.controllers.values(), ...m.injectables.values()].map((wrapper) => wrapper.instance).filter(Boolean),
  );
}

function isReal(iterate: () => unknown): boolean {
  try {
    iterate();
    return true;
  } catch {
    return false;
  }
}

describe('sealing: the API seals, only workers open', () => {
  let app: INestApplication;
  let client: Client;
  let config: ApiConfig;
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    const address = testStack().temporalAddress;
    // Exactly what the API process reads in production: the two variables `keys api-env` prints.
    config = loadApiConfig({
      ...apiKeyEnv(workerKeyring),
      TEMPORAL_ADDRESS: address,
      AO_ONBOARDING_TASK_QUEUE: uniqueName('sealing-onboarding'), // no worker polls it: the run just waits
      AO_API_TOKENS: `${OPERATOR_TOKEN}:operator,${VIEWER_TOKEN}:viewer`,
    });
    client = new Client({ connection: await Connection.connect({ address }), dataConverter: dataConverterFor(config.keys.codec) });
    app = await createApp({ config, client, logger: false, docs: false });
  });

  afterAll(async () => {
    await app?.close();
    await client?.connection.close();
  });

  it('the API refuses to start with the master keys', () => {
    expect(() => loadApiConfig({ ...apiKeyEnv(workerKeyring), AO_MASTER_KEYS: workerKeyring.toSpec() })).toThrow(/must not be given to the API.*keys api-env/s);
  });

  it('a POSTed password is sealed v2 in the workflow input; nothing in the API opens it; a worker does', async () => {
    const hostId = uniqueName('seal').toLowerCase();
    const body = {
      hostId,
      address: '10.213.8.9',
      username: 'admin',
      password: PASSWORD,
      bastion: { address: '10.213.8.1', username: 'jump', password: BASTION_PASSWORD },
      dataPath: 'proxy',
    };
    const res = await http().post('/v1/hosts').set(bearer(OPERATOR_TOKEN)).send(body);
    expect(res.status).toBe(202);
    const handle = client.workflow.getHandle(`host/${hostId}`);
    try {
      // The input exactly as the API started it (decoded with the API's own codec keys: the UI's view).
      const history = await handle.fetchHistory();
      const [input] = (await decodeArrayFromPayloads(
        client.options.loadedDataConverter,
        history.events?.[0].workflowExecutionStartedEventAttributes?.input?.payloads,
      )) as [OnboardHostInput];
      const sealed: SealedSecret[] = [input.target.credential.password!, input.target.via!.credential.password!];
      for (const s of sealed) expect(s.sealed).toMatch(/^v2\.k2\.[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
      const visible = JSON.stringify(history) + JSON.stringify(input);
      expect(visible).not.toContain(PASSWORD);
      expect(visible).not.toContain(BASTION_PASSWORD);

      // What the API holds: its config has codec and public keys only, and no provider, controller or guard in
      // the Nest container holds a Keyring, a private key or the bytes of any key that opens a sealed secret.
      const held = app.get<ApiConfig>(APP_CONFIG);
      expect(Object.keys(held.keys).sort()).toEqual(['codec', 'sealer']);
      expect(held).not.toHaveProperty('keyring');
      const instances = nestInstances(app);
      expect(instances.length).toBeGreaterThan(10);
      expect(findKeyMaterial(instances)).toEqual([]);
      // The scan is not blind: in the same instances it finds the payload-codec key the API does hold, and it
      // finds a keyring or a private scalar where there is one.
      expect(findKeyMaterial(instances, [workerKeyring.derive('payload-codec', 'k2')]).length).toBeGreaterThan(0);
      expect(findKeyMaterial({ config: { keyring: workerKeyring } })).toEqual(['$.config.keyring: Keyring']);
      expect(findKeyMaterial({ k: Buffer.concat([Buffer.from('x'), workerKeyring.derive('secret-seal-x25519', 'k1')]) })).toEqual(['$.k: key bytes']);

      // Every way of opening with what the API has fails.
      for (const s of sealed) {
        expect(() => unsealSecret(held.keys.sealer as unknown as Keyring, s)).toThrow();
        expect(() => unsealSecret(Keyring.parse(held.keys.codec.toSpec()), s)).toThrow(/could not be opened/);
      }

      // The workers' keyring opens both.
      expect(sealed.map((s) => unsealSecret(workerKeyring, s))).toEqual([PASSWORD, BASTION_PASSWORD]);
      // And a worker that only has the older key (before the rotation reached it) cannot: it fails loudly.
      expect(() => unsealSecret(Keyring.parse(`k1:${MASTER.k1.toString('base64')}`), sealed[0])).toThrow(/unknown key id "k2"/);
    } finally {
      await handle.terminate('sealing test done').catch(() => undefined);
    }
  });

  describe('codec server roles', () => {
    const plain = defaultPayloadConverter.toPayload({ credential: { password: sealSecret(workerKeyring, PASSWORD) } });
    const wire = { metadata: { encoding: Buffer.from(plain.metadata!.encoding!).toString('base64') }, data: Buffer.from(plain.data!).toString('base64') };

    it('/codec/encode: 403 for a viewer, 200 for an operator; /codec/decode works for a viewer', async () => {
      const asViewer = await http().post('/codec/encode').set(bearer(VIEWER_TOKEN)).send({ payloads: [wire] });
      expect(asViewer.status).toBe(403);
      expect(asViewer.body.code).toBe('FORBIDDEN');
      const enc = await http().post('/codec/encode').set(bearer(OPERATOR_TOKEN)).send({ payloads: [wire] });
      expect(enc.status).toBe(200);
      expect(Buffer.from(enc.body.payloads[0].metadata['encryption-key-id'], 'base64').toString()).toBe('k2');
      const dec = await http().post('/codec/decode').set(bearer(VIEWER_TOKEN)).send(enc.body);
      expect(dec.status).toBe(200);
      expect(dec.body.payloads).toEqual([wire]);
      // The decoded view still carries the secret sealed.
      expect(dec.text).not.toContain(PASSWORD);
    });
  });

  describe('dev stack codec capability', () => {
    const secret = randomBytes(32).toString('base64url');
    let dev: Awaited<ReturnType<typeof startTestApp>>;
    let encoded: { payloads: unknown[] };
    const devHttp = () => request(dev.app.getHttpServer());

    beforeAll(async () => {
      dev = await startTestApp(await deadAddress(), { configOverrides: { devCodecSecret: secret }, docs: false });
      const codec = new EncryptionCodec(dev.config.keys.codec);
      const [p] = await codec.encode([defaultPayloadConverter.toPayload({ hello: 'dev' })]);
      encoded = {
        payloads: [
          {
            metadata: Object.fromEntries(Object.entries(p.metadata!).map(([k, v]) => [k, Buffer.from(v!).toString('base64')])),
            data: Buffer.from(p.data!).toString('base64'),
          },
        ],
      };
    });
    afterAll(() => dev?.close());

    it('decodes without a token only with the right secret', async () => {
      const ok = await devHttp().post(`/codec/dev/${secret}/decode`).set('Origin', UI_ORIGIN).send(encoded);
      expect(ok.status).toBe(200);
      expect(JSON.parse(Buffer.from(ok.body.payloads[0].data, 'base64').toString())).toEqual({ hello: 'dev' });
      expect(ok.headers['access-control-allow-origin']).toBe(UI_ORIGIN); // CORS for the UI stays

      const wrong = [secret.slice(0, -1) + (secret.endsWith('A') ? 'B' : 'A'), secret.slice(0, -1), `${secret}x`, 'x'];
      for (const guess of wrong) {
        const res = await devHttp().post(`/codec/dev/${guess}/decode`).set('Origin', UI_ORIGIN).send(encoded);
        expect(res.status).toBe(401);
        expect(res.body.code).toBe('UNAUTHENTICATED');
      }
    });

    it('never encodes, with or without the secret', async () => {
      const payloads = [{ metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: Buffer.from('{}').toString('base64') }];
      const res = await devHttp().post(`/codec/dev/${secret}/encode`).set('Origin', UI_ORIGIN).send({ payloads });
      expect(res.status).toBe(404);
      expect(res.body.payloads).toBeUndefined();
      expect((await devHttp().post('/codec/encode').set('Origin', UI_ORIGIN).send({ payloads })).status).toBe(401);
    });

    it('a forged Origin header alone gets 401 on the token-protected codec routes', async () => {
      for (const path of ['/codec/decode', '/codec/encode']) {
        const res = await devHttp().post(path).set('Origin', UI_ORIGIN).send(encoded);
        expect(res.status).toBe(401);
        expect(res.body.code).toBe('UNAUTHENTICATED');
      }
    });

    it('does not exist unless configured (production)', async () => {
      const res = await http().post(`/codec/dev/${secret}/decode`).set('Origin', UI_ORIGIN).send(encoded);
      expect(res.status).toBe(404);
    });
  });
});
