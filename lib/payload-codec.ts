import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { METADATA_ENCODING_KEY } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { CodecKeys, CodecKeySource } from './keyring';

const ENCODING = 'binary/encrypted';
const KEY_ID = 'encryption-key-id';

/**
 * AES-256-GCM over whole payloads (metadata included); the key id rides in clear metadata for rotation.
 * Takes the payload-codec keys only: the worker passes its `Keyring`, the API its `CodecKeys` (AO_CODEC_KEYS).
 */
export class EncryptionCodec implements PayloadCodec {
  private readonly keys: CodecKeys;

  constructor(keys: CodecKeySource) {
    this.keys = keys.codecKeys();
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const keyId = this.keys.primaryId;
    const key = this.keys.key(keyId);
    return payloads.map((payload) => {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const plain = temporal.api.common.v1.Payload.encode(payload).finish();
      const data = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: {
          [METADATA_ENCODING_KEY]: Buffer.from(ENCODING),
          [KEY_ID]: Buffer.from(keyId),
        },
        data,
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
      if (!encoding || Buffer.from(encoding).toString() !== ENCODING) return payload;
      const keyIdRaw = payload.metadata?.[KEY_ID];
      if (!keyIdRaw) throw new Error('encrypted payload without key id');
      const keyId = Buffer.from(keyIdRaw).toString();
      const data = Buffer.from(payload.data ?? new Uint8Array());
      const decipher = createDecipheriv('aes-256-gcm', this.keys.key(keyId), data.subarray(0, 12));
      decipher.setAuthTag(data.subarray(data.length - 16));
      const plain = Buffer.concat([decipher.update(data.subarray(12, data.length - 16)), decipher.final()]);
      return temporal.api.common.v1.Payload.decode(plain);
    });
  }
}
