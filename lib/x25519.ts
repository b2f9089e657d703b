import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

/**
 * Raw 32-byte X25519 keys <-> Node KeyObjects. Node imports X25519 keys only as DER or JWK; the DER forms are a
 * fixed prefix (RFC 8410: PKCS#8 for the private scalar, SubjectPublicKeyInfo for the public key) plus the raw bytes.
 */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

export const X25519_KEY_BYTES = 32;

export function x25519PrivateKey(raw: Buffer): KeyObject {
  if (raw.length !== X25519_KEY_BYTES) throw new Error(`an X25519 private key is ${X25519_KEY_BYTES} bytes, got ${raw.length}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
}

export function x25519PublicKey(raw: Buffer): KeyObject {
  if (raw.length !== X25519_KEY_BYTES) throw new Error(`an X25519 public key is ${X25519_KEY_BYTES} bytes, got ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** The raw public key of an X25519 key (a private key gives its public half). */
export function rawX25519PublicKey(key: KeyObject): Buffer {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const der = publicKey.export({ format: 'der', type: 'spki' });
  if (publicKey.asymmetricKeyType !== 'x25519' || der.length !== SPKI_PREFIX.length + X25519_KEY_BYTES) {
    throw new Error('not an X25519 key');
  }
  return Buffer.from(der.subarray(SPKI_PREFIX.length));
}
