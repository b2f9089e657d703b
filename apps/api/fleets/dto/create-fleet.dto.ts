import { ApiProperty, ApiPropertyOptional, OmitType, PartialType } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsInt, IsObject, IsOptional, IsString, Matches, Max, Min } from 'class-validator';
import { HOST_ID_PATTERN, NoTemplateSyntax } from '../../common/validators';
import { CreateHostDto } from '../../hosts/dto/create-host.dto';

export const MAX_FLEET_HOSTS = 5000;

/** What every host of the fleet shares: a host request without address and id (documentation of `defaults`). */
export class FleetDefaultsDto extends PartialType(OmitType(CreateHostDto, ['address', 'hostId', 'expectedHostKeySha256'] as const)) {}

/** One host of a fleet: its address and whatever differs from the defaults (documentation of `hosts[]`). */
export class FleetHostDto extends PartialType(CreateHostDto) {}

/**
 * A fleet: defaults shared by every host and the hosts with their overrides. `defaults` and `hosts` are kept as
 * the client sent them here and checked host by host with the rules of `POST /v1/hosts` (each host merged with the
 * defaults), so every error names the host and field it is about.
 */
export class CreateFleetDto {
  @ApiProperty({ description: 'The fleet id (`fleet/<name>`); posting the same name again returns the running fleet.', pattern: HOST_ID_PATTERN.source, example: 'web-eu' })
  @IsString()
  @NoTemplateSyntax()
  @Matches(HOST_ID_PATTERN, { message: 'name must match $constraint1' })
  name!: string;

  @ApiPropertyOptional({ description: 'Hosts onboarding at once (default AO_FLEET_CONCURRENCY, else 8 per controller core, 4..64).', minimum: 1, maximum: 500 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(500)
  concurrency?: number;

  @ApiPropertyOptional({ description: 'How long an unreachable host is tried before it fails HostUnreachable (default 300 s).', minimum: 10, maximum: 3600 })
  @IsOptional()
  @IsInt()
  @Min(10)
  @Max(3600)
  unreachableAfterSeconds?: number;

  @ApiPropertyOptional({ type: () => FleetDefaultsDto, description: 'Login, bastion, data path, agent mode and labels every host gets unless it says otherwise.' })
  @IsOptional()
  // The raw object: checked host by host after merging (class-transformer would turn "__proto__" into a prototype).
  @Transform(({ obj }) => (obj as Record<string, unknown>).defaults, { toClassOnly: true })
  @IsObject()
  defaults?: Record<string, unknown>;

  @ApiProperty({ type: () => [FleetHostDto], description: `1..${MAX_FLEET_HOSTS} hosts; each needs an address; labels merge over the defaults' labels; a host with its own password or key does not get the defaults' secrets.` })
  @Transform(({ obj }) => (obj as Record<string, unknown>).hosts, { toClassOnly: true })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(MAX_FLEET_HOSTS)
  @IsObject({ each: true })
  hosts!: Record<string, unknown>[];
}
