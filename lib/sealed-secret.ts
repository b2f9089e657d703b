import { createCipheriv, createDecipheriv, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import type { SealedSecret } from '../workflows/contracts';
import type { Keyring, SealingKeySource } from './keyring';
import { rawX25519PublicKey, x25519PublicKey, X25519_KEY_BYTES } from './x25519';

/**
 * Secrets (bootstrap passwords, private keys, passphrases) travel through workflows only sealed. They are also
 * inside codec-encrypted payloads, so history holds them doubly encrypted and the codec server (which only has
 * the payload-codec subkeys) shows them sealed.
 *
 * v2 (what is sealed): `v2.<keyId>.<ephemeral X25519 public key>.<iv>.<ciphertext+tag>`, all base64url.
 * Sealing needs only the recipient's public key (the API has nothing more); opening needs the private key that
 * only workers derive from the master key. ECDH(ephemeral, recipient) → HKDF-SHA256 (salt: both public keys;
 * info: a fixed label and the key id) → AES-256-GCM with the header `v2.<keyId>.<epk>.<iv>` as AAD, so no part
 * of a sealed secret can be changed or moved to another key id without failing to open.
 *
 * v1 (opened, never sealed again): `v1.<keyId>.<iv>.<ciphertext+tag>`, AES-256-GCM with the symmetric subkey
 * 'secret-seal'. Kept so old histories and running workflows still open.
 */
const V2_LABEL = 'agent-onboarding/sealed-secret/v2';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID = /^[A-Za-z0-9_.-]{1,32}$/;
const B64URL = /^[A-Za-z0-9_-]+$/;

export function sealSecret(keys: SealingKeySource, plaintext: string): SealedSecret {
  const recipient = keys.sealer().primary;
  const ephemeral = generateKeyPairSync('x25519');
  const epk = rawX25519PublicKey(ephemeral.publicKey);
  const iv = randomBytes(IV_BYTES);
  const header = `v2.${recipient.id}.${epk.toString('base64url')}.${iv.toString('base64url')}`;
  const key = v2Key(ephemeral.privateKey, recipient.key, recipient.id, epk, recipient.raw);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(header, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return { sealed: `${header}.${body.toString('base64url')}` };
}

/** Opens v2 and v1 secrets. Needs the master `Keyring`: the API's public-only `SecretSealer` cannot be passed. */
export function unsealSecret(keyring: Keyring, secret: SealedSecret): string {
  const sealed = typeof secret?.sealed === 'string' ? secret.sealed : '';
  const parts = sealed.split('.');
  if (parts[0] === 'v2' && parts.length === 5) return unsealV2(keyring, parts);
  if (parts[0] === 'v1' && parts.length === 4) return unsealV1(keyring, parts);
  throw new Error('malformed sealed secret');
}

function unsealV2(keyring: Keyring, parts: string[]): string {
  const [, keyId, epkB64, ivB64, bodyB64] = parts;
  const epk = decodeField(epkB64, X25519_KEY_BYTES);
  const iv = decodeField(ivB64, IV_BYTES);
  const body = decodeField(bodyB64);
  if (!KEY_ID.test(keyId) || !epk || !iv || !body || body.length < TAG_BYTES) throw new Error('malformed sealed secret');
  if (!keyring.has(keyId)) throw new Error(`sealed secret uses unknown key id "${keyId}"`);
  const privateKey = keyring.sealPrivateKey(keyId);
  let key: Buffer;
  try {
    key = v2Key(privateKey, x25519PublicKey(epk), keyId, epk, rawX25519PublicKey(privateKey));
  } catch {
    throw new Error('sealed secret could not be opened');
  }
  return decrypt(key, iv, body, Buffer.from(parts.slice(0, 4).join('.'), 'utf8'));
}

function unsealV1(keyring: Keyring, parts: string[]): string {
  const [, keyId, ivB64, bodyB64] = parts;
  const iv = decodeField(ivB64, IV_BYTES);
  const body = decodeField(bodyB64);
  if (!iv || !body || body.length < TAG_BYTES) throw new Error('malformed sealed secret');
  if (!keyring.has(keyId)) throw new Error(`sealed secret uses unknown key id "${keyId}"`);
  return decrypt(keyring.derive('secret-seal', keyId), iv, body);
}

/** One derivation for both sides: ECDH, then HKDF bound to the key id and both public keys. */
function v2Key(privateKey: KeyObject, publicKey: KeyObject, keyId: string, epk: Buffer, recipientRaw: Buffer): Buffer {
  const shared = diffieHellman({ privateKey, publicKey });
  // OpenSSL already refuses low-order points; an all-zero secret must never become a key either way.
  if (shared.every((b) => b === 0)) throw new Error('invalid X25519 shared secret');
  const salt = Buffer.concat([epk, recipientRaw]);
  const info = Buffer.from(`${V2_LABEL}\0${keyId}`, 'utf8');
  return Buffer.from(hkdfSync('sha256', shared, salt, info, 32));
}

function decrypt(key: Buffer, iv: Buffer, body: Buffer, aad?: Buffer): string {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    if (aad) decipher.setAAD(aad);
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    // Tampered, or sealed to another key with the same id; never anything about the plaintext.
    throw new Error('sealed secret could not be opened');
  }
}

/** Strict base64url: only canonical encodings, so two different strings never decode to the same bytes. */
function decodeField(b64: string, bytes?: number): Buffer | undefined {
  if (!B64URL.test(b64)) return undefined;
  const buf = Buffer.from(b64, 'base64url');
  if (buf.toString('base64url') !== b64) return undefined;
  if (bytes !== undefined && buf.length !== bytes) return undefined;
  return buf;
}
