import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsObject, IsOptional, ValidateNested } from 'class-validator';
import { Check } from '../../common/validators';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
export const MAX_CODEC_PAYLOADS = 10_000;

export function isBase64(v: unknown): v is string {
  return typeof v === 'string' && v.length % 4 === 0 && BASE64.test(v);
}

function isBase64Map(v: unknown): boolean {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const entries = Object.entries(v);
  return entries.length <= 64 && entries.every(([k, val]) => k.length > 0 && k.length <= 256 && isBase64(val));
}

/** One payload as the Temporal codec-server protocol carries it: base64 metadata values and data. */
export class CodecPayloadDto {
  @ApiPropertyOptional({ type: 'object', additionalProperties: { type: 'string', format: 'byte' } })
  @IsOptional()
  @Transform(({ obj }) => (obj as Record<string, unknown>).metadata, { toClassOnly: true })
  @IsObject()
  @Check('isBase64Map', (v) => v === undefined || isBase64Map(v), 'must map up to 64 names to base64 strings')
  metadata?: Record<string, string>;

  @ApiPropertyOptional({ type: 'string', format: 'byte' })
  @IsOptional()
  @Check('isBase64', (v) => v === undefined || isBase64(v), 'must be base64')
  data?: string;
}

export class CodecRequestDto {
  @ApiProperty({ type: [CodecPayloadDto] })
  @IsArray()
  @ArrayMaxSize(MAX_CODEC_PAYLOADS)
  @IsObject({ each: true })
  @ValidateNested({ each: true })
  @Type(() => CodecPayloadDto)
  payloads!: CodecPayloadDto[];
}
