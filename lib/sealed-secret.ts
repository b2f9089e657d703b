import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { SealedSecret } from '../workflows/contracts';
import type { Keyring } from './keyring';

/**
 * Secrets (bootstrap passwords, private keys, passphrases) travel through workflows only sealed.
 * Format: `v1.<keyId>.<iv b64url>.<ciphertext+tag b64url>` (AES-256-GCM, subkey 'secret-seal').
 * They are additionally inside codec-encrypted payloads, so history holds them doubly encrypted
 * and the codec server (which only has the codec subkey) shows them sealed.
 */
export function sealSecret(keyring: Keyring, plaintext: string): SealedSecret {
  const keyId = keyring.primaryId;
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyring.derive('secret-seal', keyId), iv);
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return { sealed: `v1.${keyId}.${iv.toString('base64url')}.${body.toString('base64url')}` };
}

export function unsealSecret(keyring: Keyring, secret: SealedSecret): string {
  const parts = typeof secret?.sealed === 'string' ? secret.sealed.split('.') : [];
  if (parts.length !== 4 || parts[0] !== 'v1') throw new Error('malformed sealed secret');
  const [, keyId, ivB64, bodyB64] = parts;
  if (!keyring.has(keyId)) throw new Error(`sealed secret uses unknown key id "${keyId}"`);
  const body = Buffer.from(bodyB64, 'base64url');
  const decipher = createDecipheriv('aes-256-gcm', keyring.derive('secret-seal', keyId), Buffer.from(ivB64, 'base64url'));
  decipher.setAuthTag(body.subarray(body.length - 16));
  return Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]).toString('utf8');
}
