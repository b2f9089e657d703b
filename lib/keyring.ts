import { createHash, hkdfSync } from 'node:crypto';

/**
 * Master keys from configuration: `AO_MASTER_KEYS="k2:<base64 32 bytes>,k1:<base64>"`.
 * The first key encrypts; every key decrypts (rotation: prepend a new key, keep the old ones
 * until nothing sealed with them is still needed).
 * Purpose-specific subkeys are derived with HKDF so the payload codec and the secret sealer
 * never share a key: the Temporal UI's codec server can decode payloads without being able
 * to open sealed secrets inside them.
 */
export interface MasterKey {
  id: string;
  key: Buffer;
}

export type KeyPurpose = 'payload-codec' | 'secret-seal';

export class Keyring {
  private constructor(private readonly keys: MasterKey[]) {}

  static parse(spec: string): Keyring {
    const keys = spec
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((entry) => {
        const idx = entry.indexOf(':');
        if (idx <= 0) throw new Error('AO_MASTER_KEYS entries must look like "<id>:<base64 key>"');
        const id = entry.slice(0, idx);
        const key = Buffer.from(entry.slice(idx + 1), 'base64');
        if (!/^[A-Za-z0-9_.-]{1,32}$/.test(id)) throw new Error(`AO_MASTER_KEYS: invalid key id "${id}"`);
        if (key.length !== 32) throw new Error(`AO_MASTER_KEYS: key "${id}" must be 32 bytes (base64), got ${key.length}`);
        return { id, key };
      });
    if (keys.length === 0) throw new Error('AO_MASTER_KEYS is empty');
    return new Keyring(keys);
  }

  /** A deterministic keyring for tests, derived from a label. Never for production. */
  static forTests(label = 'test'): Keyring {
    return new Keyring([{ id: `t-${label}`.slice(0, 32), key: createHash('sha256').update(label).digest() }]);
  }

  get primaryId(): string {
    return this.keys[0].id;
  }

  derive(purpose: KeyPurpose, id = this.primaryId): Buffer {
    const master = this.keys.find((k) => k.id === id);
    if (!master) throw new Error(`unknown key id "${id}"`);
    return Buffer.from(hkdfSync('sha256', master.key, Buffer.alloc(0), `agent-onboarding/${purpose}`, 32));
  }

  has(id: string): boolean {
    return this.keys.some((k) => k.id === id);
  }

  toSpec(): string {
    return this.keys.map((k) => `${k.id}:${k.key.toString('base64')}`).join(',');
  }
}
