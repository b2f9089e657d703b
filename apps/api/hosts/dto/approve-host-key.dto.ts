import { ApiProperty } from '@nestjs/swagger';
import { IsString, Matches } from 'class-validator';
import { FINGERPRINT_PATTERN } from '../../common/validators';

export class ApproveHostKeyDto {
  @ApiProperty({ description: 'The offered fingerprint being approved (must equal the one the workflow saw).', pattern: FINGERPRINT_PATTERN.source })
  @IsString()
  @Matches(FINGERPRINT_PATTERN, { message: 'hostKeySha256 must look like SHA256:<43 base64 characters>' })
  hostKeySha256!: string;
}
