import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, Matches } from 'class-validator';
import { FINGERPRINT_PATTERN, NoTemplateSyntax } from '../../common/validators';

export const SSH_HOPS = ['target', 'bastion'] as const;
export type SshHopName = (typeof SSH_HOPS)[number];

export class ApproveHostKeyDto {
  @ApiProperty({ description: 'The offered fingerprint being approved (must equal the one the workflow saw).', pattern: FINGERPRINT_PATTERN.source })
  @IsString()
  @NoTemplateSyntax()
  @Matches(FINGERPRINT_PATTERN, { message: 'hostKeySha256 must look like SHA256:<43 base64 characters>' })
  hostKeySha256!: string;

  @ApiPropertyOptional({ enum: SSH_HOPS, description: 'Whose key this is; default: the one waiting (GET shows waitingOn).' })
  @IsOptional()
  @NoTemplateSyntax()
  @IsIn(SSH_HOPS)
  hop?: SshHopName;
}
