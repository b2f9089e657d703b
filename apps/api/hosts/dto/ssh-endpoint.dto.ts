import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';
import { IsHostAddress, NoTemplateSyntax } from '../../common/validators';
import { SshLoginDto } from './ssh-login.dto';

/** An SSH server and the login for it: the host itself, or its bastion. */
export class SshEndpointDto extends SshLoginDto {
  @ApiProperty({ description: 'IPv4, IPv6 or DNS name, as the controller (or the bastion) reaches it', maxLength: 253, example: '10.213.1.5' })
  @IsString()
  @MaxLength(253)
  @NoTemplateSyntax()
  @IsHostAddress()
  address!: string;

  @ApiPropertyOptional({ minimum: 1, maximum: 65535, default: 22 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(65535)
  port: number = 22;
}
