import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsIn, IsInt, IsObject, IsOptional, IsString, Matches, Max, Min, ValidateNested } from 'class-validator';
import { HOST_ID_PATTERN, NoTemplateSyntax } from '../../common/validators';
import { BastionDto } from '../../hosts/dto/bastion.dto';
import { SshLoginDto } from '../../hosts/dto/ssh-login.dto';
import { MAX_FLEET_HOSTS } from './create-fleet.dto';

export const RETRY_PHASES = ['failed', 'needs-credentials'] as const;

/** Retry a fleet's failed and waiting hosts, optionally with corrected inputs for exactly those hosts. */
export class RetryFleetDto {
  @ApiPropertyOptional({ description: 'Only these hosts (each must be failed or waiting for credentials). Default: all of them.', type: [String] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(MAX_FLEET_HOSTS)
  @IsString({ each: true })
  @NoTemplateSyntax({ each: true })
  @Matches(HOST_ID_PATTERN, { each: true, message: 'hostIds must match $constraint1' })
  hostIds?: string[];

  @ApiPropertyOptional({ enum: RETRY_PHASES, isArray: true, description: 'Only hosts in these phases (default both).' })
  @IsOptional()
  @IsArray()
  @NoTemplateSyntax({ each: true })
  @IsIn(RETRY_PHASES, { each: true, message: `phases may only hold ${RETRY_PHASES.join(', ')}` })
  phases?: (typeof RETRY_PHASES)[number][];

  @ApiPropertyOptional({ type: () => SshLoginDto, description: 'A corrected bootstrap login: answers needs-credentials, and failed hosts start again with it.' })
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => SshLoginDto)
  credential?: SshLoginDto;

  @ApiPropertyOptional({ minimum: 1, maximum: 65535, description: 'A corrected SSH port for the failed hosts.' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(65535)
  port?: number;

  @ApiPropertyOptional({ type: () => BastionDto, description: 'A corrected bastion for the failed hosts.' })
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => BastionDto)
  bastion?: BastionDto;
}
