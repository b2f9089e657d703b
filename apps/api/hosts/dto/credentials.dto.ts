import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';
import { NoTemplateSyntax } from '../../common/validators';
import { SSH_HOPS, type SshHopName } from './approve-host-key.dto';
import { SshLoginDto } from './ssh-login.dto';

/** New credentials for an onboarding waiting in `needs-credentials`: for the host itself or for its bastion. */
export class ProvideCredentialsDto extends SshLoginDto {
  @ApiPropertyOptional({ enum: SSH_HOPS, description: 'Whose login this is; default: the one waiting (GET shows waitingOn).' })
  @IsOptional()
  @NoTemplateSyntax()
  @IsIn(SSH_HOPS)
  hop?: SshHopName;
}
