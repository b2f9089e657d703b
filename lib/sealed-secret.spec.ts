import { createCipheriv, randomBytes } from 'node:crypto';
import { Keyring, SecretSealer } from './keyring';
import { sealSecret, unsealSecret } from './sealed-secret';
import { rawX25519PublicKey } from './x25519';

const spec = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;
const parts = (s: { sealed: string }) => s.sealed.split('.');
const join = (p: string[]) => ({ sealed: p.join('.') });
/** Flips one bit of a base64url field (decoded, flipped, re-encoded: still canonical, so only crypto can catch it). */
const flip = (field: string, byte = 0) => {
  const b = Buffer.from(field, 'base64url');
  b[byte] ^= 0x01;
  return b.toString('base64url');
};

/** What the old code sealed (v1: AES-256-GCM with the symmetric 'secret-seal' subkey), for running workflows. */
function sealV1(keyring: Keyring, plaintext: string): { sealed: string } {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyring.derive('secret-seal'), iv);
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return { sealed: `v1.${keyring.primaryId}.${iv.toString('base64url')}.${body.toString('base64url')}` };
}

describe('sealed secrets v2 (X25519 + HKDF + AES-256-GCM)', () => {
  const keyring = Keyring.parse(spec('k1'));

  it('round-trips a secret full of shell metacharacters and non-ASCII, in the v2 format', () => {
    const secret = `p'a"s$(rm -rf /)\`x\`; ü ✓ \\n`;
    const sealed = sealSecret(keyring, secret);
    expect(sealed.sealed).not.toContain(secret);
    const [version, keyId, epk, iv, body] = parts(sealed);
    expect([version, keyId]).toEqual(['v2', 'k1']);
    expect(Buffer.from(epk, 'base64url')).toHaveLength(32);
    expect(Buffer.from(iv, 'base64url')).toHaveLength(12);
    expect(Buffer.from(body, 'base64url').length).toBe(Buffer.byteLength(secret) + 16);
    expect(unsealSecret(keyring, sealed)).toBe(secret);
    expect(unsealSecret(keyring, sealSecret(keyring, ''))).toBe('');
  });

  it('uses a fresh ephemeral key every time: the same secret never seals the same way', () => {
    const a = parts(sealSecret(keyring, 'same'));
    const b = parts(sealSecret(keyring, 'same'));
    expect(a[2]).not.toBe(b[2]);
    expect(a[4]).not.toBe(b[4]);
  });

  it('fails to open when any part is changed: header (key, iv), ciphertext, tag or key id', () => {
    const p = parts(sealSecret(keyring, 'secret'));
    const tampered = [
      [p[0], p[1], flip(p[2]), p[3], p[4]], // another ephemeral key
      [p[0], p[1], p[2], flip(p[3]), p[4]], // another iv
      [p[0], p[1], p[2], p[3], flip(p[4])], // ciphertext
      [p[0], p[1], p[2], p[3], flip(p[4], Buffer.from(p[4], 'base64url').length - 1)], // tag
    ];
    for (const t of tampered) expect(() => unsealSecret(keyring, join(t))).toThrow(/could not be opened/);

    // Moved to another key id the keyring also has: the id is bound into the key derivation and the AAD.
    const two = Keyring.parse(`${spec('k2')},${keyring.toSpec()}`);
    expect(unsealSecret(two, join(p))).toBe('secret');
    expect(() => unsealSecret(two, join([p[0], 'k2', ...p.slice(2)]))).toThrow(/could not be opened/);
    // An id this keyring does not know, and a keyring with the same id but another key.
    expect(() => unsealSecret(Keyring.parse(spec('other')), join(p))).toThrow(/unknown key id "k1"/);
    expect(() => unsealSecret(Keyring.parse(spec('k1')), join(p))).toThrow(/could not be opened/);
  });

  it('rejects malformed secrets without saying anything about their content', () => {
    const p = parts(sealSecret(keyring, 'secret'));
    for (const bad of [
      'nope',
      '',
      [p[0], p[1], p[2], p[3]].join('.'), // no body
      [...p, 'extra'].join('.'),
      [p[0], p[1], p[2].slice(0, -2), p[3], p[4]].join('.'), // ephemeral key too short
      [p[0], p[1], `${p[2]}=`, p[3], p[4]].join('.'), // not canonical base64url
      [p[0], 'bad id!', ...p.slice(2)].join('.'),
      [p[0], p[1], p[2], p[3], 'AAAA'].join('.'), // shorter than a tag
      ['v3', ...p.slice(1)].join('.'),
    ]) {
      expect(() => unsealSecret(keyring, { sealed: bad })).toThrow(/malformed sealed secret/);
    }
    expect(() => unsealSecret(keyring, undefined as never)).toThrow(/malformed/);
    // A low-order "ephemeral key" (all zeros) is refused, never turned into a key.
    expect(() => unsealSecret(keyring, join([p[0], p[1], Buffer.alloc(32).toString('base64url'), p[3], p[4]]))).toThrow(/could not be opened/);
  });

  it('rotation: after a new key is prepended, old secrets open and new ones use the new key id', () => {
    const old = spec('k1');
    const sealedOld = sealSecret(Keyring.parse(old), 'hunter2');
    const rotated = Keyring.parse(`${spec('k2')},${old}`);
    expect(unsealSecret(rotated, sealedOld)).toBe('hunter2');
    const fresh = sealSecret(rotated, 'x');
    expect(parts(fresh)[1]).toBe('k2');
    expect(unsealSecret(rotated, fresh)).toBe('x');
    // The API, re-derived from the rotated keys, seals to the new key too; a worker without it cannot open that.
    const apiSealer = SecretSealer.parse(rotated.sealer().toSpec());
    expect(parts(sealSecret(apiSealer, 'y'))[1]).toBe('k2');
    expect(() => unsealSecret(Keyring.parse(old), sealSecret(apiSealer, 'y'))).toThrow(/unknown key id "k2"/);
  });

  it('still opens v1 secrets (old histories, running workflows), including one sealed by the old code', () => {
    expect(unsealSecret(keyring, sealV1(keyring, 'from-v1'))).toBe('from-v1');
    // Produced by the v1 sealSecret before v2 existed; the keyring is Keyring.forTests('v1-vector').
    const recorded = { sealed: 'v1.t-v1-vector.JxoD7BgStOaCmlfN.wgUosNTw5TDgLjB8UH8iTdly8IcWVyT0EEl6-fyaGbg' };
    expect(unsealSecret(Keyring.forTests('v1-vector'), recorded)).toBe('sealed-by-v1 ✓');
    const p = parts(recorded);
    expect(() => unsealSecret(Keyring.forTests('v1-vector'), join([p[0], p[1], p[2], flip(p[3])]))).toThrow(/could not be opened/);
    // Never produced again.
    expect(parts(sealSecret(keyring, 'x'))[0]).toBe('v2');
  });

  it('a public-only sealer seals for the worker, and has no way to open', () => {
    const sealer = SecretSealer.parse(keyring.sealer().toSpec());
    const sealed = sealSecret(sealer, 'for-the-worker');
    expect(unsealSecret(keyring, sealed)).toBe('for-the-worker');
    // The derived public key is the public half of the worker's private key.
    expect(sealer.publicKey('k1')!.raw.equals(rawX25519PublicKey(keyring.sealPrivateKey('k1')))).toBe(true);
    // No method for it, and the type system refuses it where a Keyring is needed.
    expect(Object.getOwnPropertyNames(SecretSealer.prototype).filter((n) => /unseal|open|private|derive/i.test(n))).toEqual([]);
    // @ts-expect-error a SecretSealer is not a Keyring: it cannot be passed to unsealSecret.
    expect(() => unsealSecret(sealer, sealed)).toThrow();
    // Nothing in it is the private scalar.
    const privateRaw = keyring.derive('secret-seal-x25519', 'k1');
    expect(JSON.stringify(sealer, (_k, v) => (Buffer.isBuffer(v) ? v.toString('hex') : v))).not.toContain(privateRaw.toString('hex'));
  });
});
