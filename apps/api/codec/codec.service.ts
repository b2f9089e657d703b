import { Inject, Injectable } from '@nestjs/common';
import type { Payload } from '@temporalio/common';
import type { ApiConfig } from '../../../lib/config';
import { EncryptionCodec } from '../../../lib/payload-codec';
import { ApiError } from '../common/api-error';
import { ErrorCode } from '../common/error-codes';
import { APP_CONFIG } from '../temporal/temporal.module';
import type { CodecPayloadDto } from './dto/codec.dto';

export interface WirePayload {
  metadata: Record<string, string>;
  data: string;
}

/**
 * The codec server behind the Temporal UI. It holds only the payload-codec keys (AO_CODEC_KEYS): sealed secrets
 * inside decoded payloads stay sealed (only workers hold the private keys that open them).
 */
@Injectable()
export class CodecService {
  private readonly codec: EncryptionCodec;

  constructor(@Inject(APP_CONFIG) config: ApiConfig) {
    this.codec = new EncryptionCodec(config.keys.codec);
  }

  async encode(payloads: CodecPayloadDto[]): Promise<{ payloads: WirePayload[] }> {
    return { payloads: (await this.codec.encode(payloads.map(fromWire))).map(toWire) };
  }

  async decode(payloads: CodecPayloadDto[]): Promise<{ payloads: WirePayload[] }> {
    try {
      return { payloads: (await this.codec.decode(payloads.map(fromWire))).map(toWire) };
    } catch {
      // Tampered data, a retired key or a foreign payload; the reason is not the caller's business.
      throw new ApiError(400, ErrorCode.CodecFailed, 'a payload could not be decoded');
    }
  }
}

function fromWire(p: CodecPayloadDto): Payload {
  const metadata: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = Buffer.from(v, 'base64');
  return { metadata, data: Buffer.from(p.data ?? '', 'base64') };
}

function toWire(p: Payload): WirePayload {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = Buffer.from(v ?? new Uint8Array()).toString('base64');
  return { metadata, data: Buffer.from(p.data ?? new Uint8Array()).toString('base64') };
}
