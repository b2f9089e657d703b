import { ApiProperty, ApiPropertyOptional, OmitType, PartialType } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsIn, IsInt, IsNumber, IsObject, IsOptional, IsString, Matches, Max, MaxLength, Min, ValidateIf, ValidateNested } from 'class-validator';
import { Type } from 'class-transformer';
import { Check, HOST_ID_PATTERN, NoControlChars, NoTemplateSyntax } from '../../common/validators';
import { INVENTORY_GROUP_PATTERN, sourcePathProblem, sourceProblem } from '../../../../workflows/fleet/source';
import { CreateHostDto } from '../../hosts/dto/create-host.dto';

export const MAX_FLEET_HOSTS = 5000;

/** What every host of the fleet shares: a host request without address and id (documentation of `defaults`). */
export class FleetDefaultsDto extends PartialType(OmitType(CreateHostDto, ['address', 'hostId', 'expectedHostKeySha256'] as const)) {}

/** One host of a fleet: its address and whatever differs from the defaults (documentation of `hosts[]`). */
export class FleetHostDto extends PartialType(CreateHostDto) {}

export const SOURCE_KINDS = ['ansible-inventory', 'file', 'http'] as const;

/** Where a fleet's hosts come from when a Schedule keeps the fleet in step with it. */
export class FleetSourceDto {
  @ApiProperty({ enum: SOURCE_KINDS, description: 'ansible-inventory: INI or YAML read with ansible-inventory --list; file: YAML/JSON list of hosts; http: GET returning that JSON' })
  @IsString()
  @NoTemplateSyntax()
  @IsIn(SOURCE_KINDS)
  // Fields the client left out are absent, not `undefined` keys (a DTO instance has every declared field).
  @Check('sourceShape', (_v, o) => sourceProblem(Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined))) === null, 'kind, path/url and group must make a usable source (an absolute path inside AO_INVENTORY_DIRS, or a URL under AO_INVENTORY_URLS)')
  kind!: (typeof SOURCE_KINDS)[number];

  @ApiPropertyOptional({ description: 'ansible-inventory, file: an absolute path the workers may read (AO_INVENTORY_DIRS)', maxLength: 1024 })
  @ValidateIf((o: FleetSourceDto) => o.kind !== 'http' || o.path !== undefined)
  @IsString()
  @MaxLength(1024)
  @NoTemplateSyntax()
  @NoControlChars()
  @Check('usablePath', (v) => typeof v !== 'string' || sourcePathProblem(v) === null, 'must be an absolute, normalized path without $, ~, commas, backticks or backslashes')
  path?: string;

  @ApiPropertyOptional({ description: 'ansible-inventory: only this group (and its children)', pattern: INVENTORY_GROUP_PATTERN.source })
  @IsOptional()
  @IsString()
  @NoTemplateSyntax()
  @Matches(INVENTORY_GROUP_PATTERN, { message: 'group must match $constraint1' })
  group?: string;

  @ApiPropertyOptional({ description: 'http: the URL (under AO_INVENTORY_URLS)', maxLength: 2048 })
  @ValidateIf((o: FleetSourceDto) => o.kind === 'http' || o.url !== undefined)
  @IsString()
  @MaxLength(2048)
  @NoTemplateSyntax()
  @NoControlChars()
  @Check('usableUrl', (v) => typeof v !== 'string' || sourceProblem({ kind: 'http', url: v }) === null, 'must be an http(s) URL without credentials, whitespace, quotes, braces or dot segments')
  url?: string;
}

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

  @ApiPropertyOptional({ type: () => [FleetHostDto], description: `1..${MAX_FLEET_HOSTS} hosts (or a source); each needs an address; labels merge over the defaults' labels; a host with its own password or key does not get the defaults' secrets.` })
  @Transform(({ obj }) => (obj as Record<string, unknown>).hosts, { toClassOnly: true })
  @ValidateIf((o: CreateFleetDto) => o.source === undefined || o.hosts !== undefined)
  @Check('hostsOrSource', (_v, o) => (o.hosts === undefined) !== (o.source === undefined), 'give hosts or a source, not both')
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(MAX_FLEET_HOSTS)
  @IsObject({ each: true })
  hosts?: Record<string, unknown>[];

  @ApiPropertyOptional({ type: () => FleetSourceDto, description: 'Instead of hosts: a source a Schedule reconciles the fleet with (new hosts onboarded, gone ones offboarded, relabeled ones changed).' })
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => FleetSourceDto)
  source?: FleetSourceDto;

  @ApiPropertyOptional({ description: 'With a source: seconds between reconcile passes (default 600).', minimum: 30, maximum: 86400 })
  @IsOptional()
  @IsInt()
  @Min(30)
  @Max(86400)
  reconcileEverySeconds?: number;

  @ApiPropertyOptional({ description: 'With a source: the largest share of the fleet one pass offboards without approval (default 0.1; at least one host).', minimum: 0, maximum: 1 })
  @IsOptional()
  @IsNumber()
  @Min(0)
  @Max(1)
  maxOffboardShare?: number;
}

export class ApprovePlanDto {
  @ApiProperty({ description: 'The digest of the plan to apply (GET …/plan or the status\'s source.held.digest)', pattern: '^[0-9a-f]{64}$' })
  @IsString()
  @NoTemplateSyntax()
  @Matches(/^[0-9a-f]{64}$/, { message: 'digest must be 64 hex characters' })
  digest!: string;
}
