import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';
import { FINGERPRINT_PATTERN, IsHostAddress } from '../../common/validators';
import { SshLoginDto } from './ssh-login.dto';

/** A jump host for the control path; with dataPath "proxy" also the host that carries the forward. */
export class BastionDto extends SshLoginDto {
  @ApiProperty({ description: 'IPv4, IPv6 or DNS name', maxLength: 253, example: '10.213.0.10' })
  @IsString()
  @MaxLength(253)
  @IsHostAddress()
  address!: string;

  @ApiPropertyOptional({ minimum: 1, maximum: 65535, default: 22 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(65535)
  port: number = 22;

  @ApiPropertyOptional({ description: "The bastion's pinned host key; captured on first contact when absent.", pattern: FINGERPRINT_PATTERN.source })
  @IsOptional()
  @IsString()
  @Matches(FINGERPRINT_PATTERN, { message: 'hostKeySha256 must look like SHA256:<43 base64 characters>' })
  hostKeySha256?: string;
}
