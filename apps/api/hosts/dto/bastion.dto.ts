import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, Matches } from 'class-validator';
import { FINGERPRINT_PATTERN, NoTemplateSyntax } from '../../common/validators';
import { SshEndpointDto } from './ssh-endpoint.dto';

/** A jump host for the control path; with dataPath "proxy" also the host that carries the forward. */
export class BastionDto extends SshEndpointDto {
  @ApiPropertyOptional({ description: "The bastion's pinned host key; captured on first contact when absent.", pattern: FINGERPRINT_PATTERN.source })
  @IsOptional()
  @IsString()
  @NoTemplateSyntax()
  @Matches(FINGERPRINT_PATTERN, { message: 'hostKeySha256 must look like SHA256:<43 base64 characters>' })
  hostKeySha256?: string;
}
