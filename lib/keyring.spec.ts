import { randomBytes } from 'node:crypto';
import { Keyring } from './keyring';
import { sealSecret, unsealSecret } from './sealed-secret';
import { EncryptionCodec } from './payload-codec';

const spec = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;

describe('Keyring and sealed secrets', () => {
  it('round-trips a secret full of shell metacharacters and non-ASCII', () => {
    const kr = Keyring.parse(spec('k1'));
    const secret = `p'a"s$(rm -rf /)\`x\`; ü ✓ \\n`;
    const sealed = sealSecret(kr, secret);
    expect(sealed.sealed).not.toContain(secret);
    expect(unsealSecret(kr, sealed)).toBe(secret);
  });

  it('opens secrets sealed with an older key after rotation, seals with the newest', () => {
    const old = spec('k1');
    const sealedOld = sealSecret(Keyring.parse(old), 'hunter2');
    const rotated = Keyring.parse(`${spec('k2')},${old}`);
    expect(unsealSecret(rotated, sealedOld)).toBe('hunter2');
    expect(sealSecret(rotated, 'x').sealed.split('.')[1]).toBe('k2');
  });

  it('rejects tampering and unknown keys', () => {
    const kr = Keyring.parse(spec('k1'));
    const s = sealSecret(kr, 'secret');
    const tampered = { sealed: s.sealed.slice(0, -2) + (s.sealed.endsWith('A') ? 'BB' : 'AA') };
    expect(() => unsealSecret(kr, tampered)).toThrow();
    expect(() => unsealSecret(Keyring.parse(spec('other')), s)).toThrow(/unknown key id/);
    expect(() => unsealSecret(kr, { sealed: 'nope' })).toThrow(/malformed/);
  });

  it('refuses malformed key specs with a message naming the problem', () => {
    expect(() => Keyring.parse('k1:' + randomBytes(16).toString('base64'))).toThrow(/32 bytes/);
    expect(() => Keyring.parse('nocolon')).toThrow(/<id>:<base64 key>/);
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

  it('derives different subkeys per purpose (the codec server cannot open sealed secrets)', () => {
    const kr = Keyring.parse(spec('k1'));
    expect(kr.derive('payload-codec').equals(kr.derive('secret-seal'))).toBe(false);
  });
});
