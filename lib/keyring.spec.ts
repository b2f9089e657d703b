import { randomBytes } from 'node:crypto';
import { CodecKeys, Keyring, SecretSealer } from './keyring';
import { EncryptionCodec } from './payload-codec';

const spec = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;

describe('Keyring and the keys derived from it', () => {
  it('refuses malformed key specs with a message naming the variable and the problem', () => {
    expect(() => Keyring.parse('k1:' + randomBytes(16).toString('base64'))).toThrow(/AO_MASTER_KEYS: key "k1" must be .*32 bytes.*got 16/);
    expect(() => Keyring.parse('nocolon')).toThrow(/AO_MASTER_KEYS entries must look like "<id>:<base64 key>"/);
    expect(() => Keyring.parse('bad id!:' + randomBytes(32).toString('base64'))).toThrow(/invalid key id "bad id!"/);
    expect(() => Keyring.parse('k1:not*base64')).toThrow(/key "k1" is not base64/);
    expect(() => Keyring.parse(`${spec('k1')},${spec('k1')}`)).toThrow(/key id "k1" appears twice/);
    expect(() => Keyring.parse(' , ')).toThrow(/AO_MASTER_KEYS is empty/);
    expect(() => CodecKeys.parse('k1:' + randomBytes(31).toString('base64'))).toThrow(/AO_CODEC_KEYS: key "k1"/);
    expect(() => SecretSealer.parse('nocolon')).toThrow(/AO_SEAL_PUBLIC_KEYS entries/);
  });

  it('derives different subkeys per purpose (the codec server cannot open sealed secrets)', () => {
    const kr = Keyring.parse(spec('k1'));
    const keys = (['payload-codec', 'secret-seal', 'secret-seal-x25519'] as const).map((p) => kr.derive(p).toString('hex'));
    expect(new Set(keys).size).toBe(3);
    expect(kr.codecKeys().key('k1').equals(kr.derive('payload-codec', 'k1'))).toBe(true);
  });

  it('derives the same API keys from the same master keys (rotation and re-deriving keep working)', () => {
    const master = `${spec('k2')},${spec('k1')}`;
    const a = Keyring.parse(master).apiKeys();
    const b = Keyring.parse(master).apiKeys();
    expect([a.codec.toSpec(), a.sealer.toSpec()]).toEqual([b.codec.toSpec(), b.sealer.toSpec()]);
    expect(a.sealer.ids).toEqual(['k2', 'k1']);
    expect(a.codec.primaryId).toBe('k2');
    // What the API is given parses back to the same keys.
    expect(CodecKeys.parse(a.codec.toSpec()).toSpec()).toBe(a.codec.toSpec());
    expect(SecretSealer.parse(a.sealer.toSpec()).toSpec()).toBe(a.sealer.toSpec());
    expect(a.sealer.toSpec()).not.toContain(master.split(',')[0].split(':')[1]);
  });

  it('payload codec: encrypted payloads hide the plaintext and decode back', async () => {
    const codec = new EncryptionCodec(Keyring.parse(spec('k1')));
    const payload = { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('{"password":"hunter2"}') };
    const [enc] = await codec.encode([payload]);
    expect(Buffer.from(enc.data!).toString('latin1')).not.toContain('hunter2');
    expect(Buffer.from(enc.metadata!.encoding!).toString()).toBe('binary/encrypted');
    const [dec] = await codec.decode([enc]);
    expect(Buffer.from(dec.data!).toString()).toBe('{"password":"hunter2"}');
  });

  it('payload codec: the API (AO_CODEC_KEYS) and the worker (AO_MASTER_KEYS) read each other, across rotation', async () => {
    const old = spec('k1');
    const worker = Keyring.parse(`${spec('k2')},${old}`);
    const api = new EncryptionCodec(CodecKeys.parse(worker.codecKeys().toSpec()));
    const payload = { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('"x"') };
    const [fromApi] = await api.encode([payload]);
    expect(Buffer.from(fromApi.metadata!['encryption-key-id']!).toString()).toBe('k2');
    expect(Buffer.from((await new EncryptionCodec(worker).decode([fromApi]))[0].data!).toString()).toBe('"x"');
    const [fromOldWorker] = await new EncryptionCodec(Keyring.parse(old)).encode([payload]);
    expect(Buffer.from((await api.decode([fromOldWorker]))[0].data!).toString()).toBe('"x"');
  });
});
