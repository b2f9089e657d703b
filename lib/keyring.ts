import { createHash, hkdfSync, type KeyObject } from 'node:crypto';
import { rawX25519PublicKey, x25519PrivateKey, x25519PublicKey, X25519_KEY_BYTES } from './x25519';

/**
 * Who holds which key (docs/security.md, "Keys: who holds what"):
 * - workers hold the master keys (`AO_MASTER_KEYS`, a `Keyring`): they encode/decode payloads and open sealed
 *   secrets;
 * - the API holds `ApiKeys`: the payload-codec subkeys (`CodecKeys`, to read and write Temporal payloads) and the
 *   sealing public keys (`SecretSealer`, to seal what a request carries). Neither opens a sealed secret.
 *
 * Master keys: `AO_MASTER_KEYS="k2:<base64 32 bytes>,k1:<base64>"`. The first key encrypts; every key decrypts
 * (rotation: prepend a new key, keep the old ones until nothing sealed with them is still needed).
 * Purpose-specific subkeys are derived with HKDF, so the payload codec and the secret sealer never share a key:
 * the codec server decodes payloads without being able to open the sealed secrets inside them.
 */
export interface MasterKey {
  id: string;
  key: Buffer;
}

/**
 * - `payload-codec`: AES-256-GCM key of the payload codec;
 * - `secret-seal-x25519`: the X25519 private scalar sealed secrets (v2) are sealed to;
 * - `secret-seal`: the symmetric key of v1 sealed secrets (opened for old histories, never used to seal).
 */
export type KeyPurpose = 'payload-codec' | 'secret-seal' | 'secret-seal-x25519';

/** Anything that can hand out the payload-codec keys: the worker's `Keyring` and the API's `CodecKeys`. */
export interface CodecKeySource {
  codecKeys(): CodecKeys;
}

/** Anything that can hand out the sealing public keys: the worker's `Keyring` and the API's `SecretSealer`. */
export interface SealingKeySource {
  sealer(): SecretSealer;
}

/** What the API is configured with: enough to read and write payloads and to seal, nothing that opens. */
export interface ApiKeys {
  codec: CodecKeys;
  sealer: SecretSealer;
}

const KEY_ID = /^[A-Za-z0-9_.-]{1,32}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Parses `id:<base64 bytes>[,id:…]` (newest first) with messages that name the variable and the entry. */
function parseKeyList(spec: string, variable: string, what: string): MasterKey[] {
  const keys = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const idx = entry.indexOf(':');
      if (idx <= 0) throw new Error(`${variable} entries must look like "<id>:<base64 key>"`);
      const id = entry.slice(0, idx);
      const b64 = entry.slice(idx + 1).trim();
      if (!KEY_ID.test(id)) throw new Error(`${variable}: invalid key id "${id}" (1-32 of A-Z a-z 0-9 _ . -)`);
      if (!BASE64.test(b64)) throw new Error(`${variable}: key "${id}" is not base64`);
      const key = Buffer.from(b64, 'base64');
      if (key.length !== 32) throw new Error(`${variable}: key "${id}" must be ${what} of 32 bytes (base64), got ${key.length}`);
      return { id, key };
    });
  if (keys.length === 0) throw new Error(`${variable} is empty`);
  const seen = new Set<string>();
  for (const { id } of keys) {
    if (seen.has(id)) throw new Error(`${variable}: key id "${id}" appears twice`);
    seen.add(id);
  }
  return keys;
}

const toSpec = (keys: ReadonlyArray<MasterKey>) => keys.map((k) => `${k.id}:${k.key.toString('base64')}`).join(',');

/** Payload-codec subkeys, newest first: the newest encodes, every one decodes. What the API gets as `AO_CODEC_KEYS`. */
export class CodecKeys implements CodecKeySource {
  private constructor(private readonly keys: ReadonlyArray<MasterKey>) {}

  static parse(spec: string, variable = 'AO_CODEC_KEYS'): CodecKeys {
    return new CodecKeys(parseKeyList(spec, variable, 'a payload-codec key'));
  }

  /** @internal The keyring's derived subkeys. */
  static fromDerived(keys: MasterKey[]): CodecKeys {
    return new CodecKeys(keys);
  }

  codecKeys(): CodecKeys {
    return this;
  }

  get primaryId(): string {
    return this.keys[0].id;
  }

  key(id = this.primaryId): Buffer {
    const entry = this.keys.find((k) => k.id === id);
    if (!entry) throw new Error(`unknown payload key id "${id}"`);
    return entry.key;
  }

  toSpec(): string {
    return toSpec(this.keys);
  }
}

export interface SealingPublicKey {
  id: string;
  /** Raw X25519 public key (32 bytes). */
  raw: Buffer;
  key: KeyObject;
}

/**
 * The sealing public keys, newest first. It seals (`sealSecret`) and nothing else: there is no private key in it,
 * so code that holds only a `SecretSealer` (the API) has no way to open what it sealed. `AO_SEAL_PUBLIC_KEYS`.
 */
export class SecretSealer implements SealingKeySource {
  private constructor(private readonly keys: ReadonlyArray<SealingPublicKey>) {}

  static parse(spec: string, variable = 'AO_SEAL_PUBLIC_KEYS'): SecretSealer {
    return new SecretSealer(
      parseKeyList(spec, variable, 'an X25519 public key').map(({ id, key }) => {
        try {
          return { id, raw: key, key: x25519PublicKey(key) };
        } catch {
          throw new Error(`${variable}: key "${id}" is not an X25519 public key`);
        }
      }),
    );
  }

  /** @internal The keyring's derived public keys. */
  static fromDerived(keys: SealingPublicKey[]): SecretSealer {
    return new SecretSealer(keys);
  }

  sealer(): SecretSealer {
    return this;
  }

  /** The key new secrets are sealed to. */
  get primary(): SealingPublicKey {
    return this.keys[0];
  }

  get ids(): string[] {
    return this.keys.map((k) => k.id);
  }

  publicKey(id: string): SealingPublicKey | undefined {
    return this.keys.find((k) => k.id === id);
  }

  toSpec(): string {
    return this.keys.map((k) => `${k.id}:${k.raw.toString('base64')}`).join(',');
  }
}

/**
 * The worker's master keys. Everything else is derived from them, deterministically, so `AO_MASTER_KEYS` alone
 * configures a worker and the API's keys can always be re-derived (`npx agent-onboarding keys api-env`).
 */
export class Keyring implements CodecKeySource, SealingKeySource {
  private readonly privateKeys = new Map<string, KeyObject>();
  private derivedCodecKeys?: CodecKeys;
  private derivedSealer?: SecretSealer;

  private constructor(private readonly keys: MasterKey[]) {}

  static parse(spec: string): Keyring {
    return new Keyring(parseKeyList(spec, 'AO_MASTER_KEYS', 'a master key'));
  }

  /** A deterministic keyring for tests, derived from a label. Never for production. */
  static forTests(label = 'test'): Keyring {
    return new Keyring([{ id: `t-${label}`.slice(0, 32), key: createHash('sha256').update(label).digest() }]);
  }

  get primaryId(): string {
    return this.keys[0].id;
  }

  get ids(): string[] {
    return this.keys.map((k) => k.id);
  }

  derive(purpose: KeyPurpose, id = this.primaryId): Buffer {
    const master = this.keys.find((k) => k.id === id);
    if (!master) throw new Error(`unknown key id "${id}"`);
    return Buffer.from(hkdfSync('sha256', master.key, Buffer.alloc(0), `agent-onboarding/${purpose}`, 32));
  }

  has(id: string): boolean {
    return this.keys.some((k) => k.id === id);
  }

  codecKeys(): CodecKeys {
    this.derivedCodecKeys ??= CodecKeys.fromDerived(this.keys.map(({ id }) => ({ id, key: this.derive('payload-codec', id) })));
    return this.derivedCodecKeys;
  }

  sealer(): SecretSealer {
    this.derivedSealer ??= SecretSealer.fromDerived(
      this.keys.map(({ id }) => {
        const raw = rawX25519PublicKey(this.sealPrivateKey(id));
        return { id, raw, key: x25519PublicKey(raw) };
      }),
    );
    return this.derivedSealer;
  }

  /** The X25519 private key that opens secrets sealed to key `id` (v2). Only workers ever hold a Keyring. */
  sealPrivateKey(id: string): KeyObject {
    let key = this.privateKeys.get(id);
    if (!key) {
      // X25519 clamps any 32 bytes into a valid scalar, so an HKDF output is a private key as it is.
      key = x25519PrivateKey(this.derive('secret-seal-x25519', id).subarray(0, X25519_KEY_BYTES));
      this.privateKeys.set(id, key);
    }
    return key;
  }

  /** What the API needs: the codec subkeys and the sealing public keys, never a master or private key. */
  apiKeys(): ApiKeys {
    return { codec: this.codecKeys(), sealer: this.sealer() };
  }

  toSpec(): string {
    return toSpec(this.keys);
  }
}
