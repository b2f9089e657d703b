import { ApiPropertyOptional } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import { IsIn, IsIP, IsObject, IsOptional, IsString, IsUrl, Matches, MaxLength, ValidateNested } from 'class-validator';
import {
  Check,
  FINGERPRINT_PATTERN,
  HOST_ID_PATTERN,
  IsConfigSafeUrl,
  IsLabelMap,
  LABEL_KEY_PATTERN,
  LABEL_VALUE_PATTERN,
  MAX_LABELS,
  NoTemplateSyntax,
  OnlyWhen,
  RESERVED_LABEL_KEYS,
} from '../../common/validators';
import { BastionDto } from './bastion.dto';
import { SshEndpointDto } from './ssh-endpoint.dto';

export const DATA_PATHS = ['direct', 'tunnel', 'proxy'] as const;
export type DataPathKind = (typeof DATA_PATHS)[number];
export const AGENT_MODES = ['artifact', 'repo'] as const;

export class CreateHostDto extends SshEndpointDto {
  @ApiPropertyOptional({ description: 'Defaults to one derived from address and port. Ids starting with "proxy-" are reserved.', pattern: HOST_ID_PATTERN.source, example: 'web-1' })
  @IsOptional()
  @IsString()
  @NoTemplateSyntax()
  @Matches(HOST_ID_PATTERN, { message: 'hostId must match $constraint1' })
  @Check('notReserved', (v) => typeof v !== 'string' || !v.startsWith('proxy-'), 'must not start with "proxy-" (reserved for proxy tunnels)')
  hostId?: string;

  @ApiPropertyOptional({ type: () => BastionDto, description: 'Jump host for the control path; the proxy host for dataPath "proxy".' })
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => BastionDto)
  bastion?: BastionDto;

  @ApiPropertyOptional({ description: 'Pin the host key up front instead of trusting the first contact.', pattern: FINGERPRINT_PATTERN.source })
  @IsOptional()
  @IsString()
  @NoTemplateSyntax()
  @Matches(FINGERPRINT_PATTERN, { message: 'expectedHostKeySha256 must look like SHA256:<43 base64 characters>' })
  expectedHostKeySha256?: string;

  @ApiPropertyOptional({
    enum: DATA_PATHS,
    default: 'tunnel',
    description: 'direct: the host writes to InfluxDB itself; tunnel: a remote forward on the host; proxy: a forward on the bastion.',
  })
  @IsOptional()
  @NoTemplateSyntax()
  @IsIn(DATA_PATHS)
  @Check('proxyNeedsBastion', (v, o) => v !== 'proxy' || (o.bastion !== undefined && o.bastion !== null), 'proxy requires a bastion (the proxy host)')
  dataPath: DataPathKind = 'tunnel';

  @ApiPropertyOptional({
    description:
      'For dataPath "direct": the InfluxDB URL as the host sees it (default: the configured INFLUX_URL). ' +
      'It is written into the host\'s Telegraf configuration: no template syntax, whitespace, quotes, backslashes, braces or $.',
    maxLength: 2048,
  })
  @IsOptional()
  @IsString()
  @MaxLength(2048)
  @NoTemplateSyntax()
  @IsConfigSafeUrl()
  @IsUrl({ protocols: ['http', 'https'], require_protocol: true, require_tld: false, disallow_auth: true })
  @OnlyWhen((o) => (o.dataPath ?? 'tunnel') === 'direct', 'is only valid with dataPath "direct"')
  influxUrl?: string;

  @ApiPropertyOptional({
    description:
      'For dataPath "proxy": the address the forward binds on the proxy host. Default: the bastion\'s address as the host sees it (found when probing). Never an unspecified address (0.0.0.0, ::).',
  })
  @IsOptional()
  @NoTemplateSyntax()
  @IsIP()
  @Check('specificAddress', (v) => typeof v !== 'string' || !/^(0\.0\.0\.0|::|0:0:0:0:0:0:0:0)$/.test(v), 'must be a specific address of the proxy, not every interface')
  @OnlyWhen((o) => o.dataPath === 'proxy', 'is only valid with dataPath "proxy"')
  proxyBindAddress?: string;

  @ApiPropertyOptional({ enum: AGENT_MODES, default: 'artifact' })
  @IsOptional()
  @NoTemplateSyntax()
  @IsIn(AGENT_MODES)
  agentMode: (typeof AGENT_MODES)[number] = 'artifact';

  @ApiPropertyOptional({
    description:
      `Up to ${MAX_LABELS} labels (Telegraf global tags); keys ${LABEL_KEY_PATTERN.source} except ${RESERVED_LABEL_KEYS.join(', ')}, ` +
      `values ${LABEL_VALUE_PATTERN.source}`,
    type: 'object',
    additionalProperties: { type: 'string' },
    example: { env: 'prod' },
  })
  @IsOptional()
  // The raw object: class-transformer would copy keys like "__proto__" into a prototype instead of checking them.
  @Transform(({ obj }) => (obj as Record<string, unknown>).labels, { toClassOnly: true })
  @IsLabelMap()
  labels?: Record<string, string>;
}
