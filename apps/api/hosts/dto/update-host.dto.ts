import { ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsIn, IsString, Matches, MaxLength, ValidateIf } from 'class-validator';
import type { HostChange } from '../../../../workflows/host/messages';
import { validationFailed } from '../../common/api-error';
import {
  AGENT_VERSION_PATTERN,
  Check,
  INTERVAL_PATTERN,
  IsLabelMap,
  LABEL_KEY_PATTERN,
  LABEL_VALUE_PATTERN,
  MAX_LABELS,
  NoTemplateSyntax,
  OnlyWhen,
  RESERVED_LABEL_KEYS,
} from '../../common/validators';
import { AGENT_MODES } from './create-host.dto';

export const CHANGE_FIELDS = ['labels', 'interval', 'agentMode', 'agentVersion'] as const;

// A field that is present is validated, `null` included: a PATCH with `"interval": null` is a mistake, not "no change"
// (IsOptional would let null through as if the field were absent).
const present = (field: (typeof CHANGE_FIELDS)[number]) => ValidateIf((o: Record<string, unknown>) => o[field] !== undefined);

/**
 * A change of a healthy (or degraded) host's agent: `PATCH /v1/hosts/:id`. Every field is optional, at least one
 * is required (see toHostChange). The same rules as at onboarding (workflows/input-rules.ts); whether the host may
 * change now (its phase, a change in flight, its install mode for agentVersion) is the workflow's to say: 409.
 */
export class UpdateHostDto {
  @ApiPropertyOptional({
    description:
      `Replaces all labels (Telegraf global tags); {} removes them. Up to ${MAX_LABELS}; keys ${LABEL_KEY_PATTERN.source} ` +
      `except ${RESERVED_LABEL_KEYS.join(', ')}, values ${LABEL_VALUE_PATTERN.source}`,
    type: 'object',
    additionalProperties: { type: 'string' },
    example: { env: 'prod', team: 'db' },
  })
  @present('labels')
  // The raw object: class-transformer would copy keys like "__proto__" into a prototype instead of checking them.
  @Transform(({ obj }) => (obj as Record<string, unknown>).labels, { toClassOnly: true })
  @IsLabelMap()
  labels?: Record<string, string>;

  @ApiPropertyOptional({ description: 'Telegraf collection interval.', pattern: INTERVAL_PATTERN.source, maxLength: 16, example: '30s' })
  @present('interval')
  @IsString()
  @MaxLength(16)
  @NoTemplateSyntax()
  @Matches(INTERVAL_PATTERN, { message: 'interval must be a duration like 10s, 500ms, 5m or 1h ($constraint1)' })
  interval?: string;

  @ApiPropertyOptional({ enum: AGENT_MODES, description: 'How Telegraf is installed: a packaged artifact, or the package repository.' })
  @present('agentMode')
  @NoTemplateSyntax()
  @IsIn(AGENT_MODES)
  agentMode?: (typeof AGENT_MODES)[number];

  @ApiPropertyOptional({
    description:
      'repo mode: the Telegraf package version to pin ("" unpins: the newest). Refused with agentMode "artifact"; ' +
      'without agentMode the host must be in repo mode already (else 409).',
    pattern: `^$|${AGENT_VERSION_PATTERN.source}`,
    maxLength: 64,
    example: '1.39.3-1',
  })
  @present('agentVersion')
  @IsString()
  @MaxLength(64)
  @NoTemplateSyntax()
  @Check('isAgentVersion', (v) => typeof v !== 'string' || v === '' || AGENT_VERSION_PATTERN.test(v), `must be a package version (${AGENT_VERSION_PATTERN.source}) or "" to unpin`)
  @OnlyWhen((o) => o.agentMode === undefined || o.agentMode === 'repo', 'is only valid with agentMode "repo"')
  agentVersion?: string;
}

/** The update's argument: only the fields the body set. An empty body is a 400 before Temporal is asked. */
export function toHostChange(dto: UpdateHostDto): HostChange {
  const change: HostChange = {};
  if (dto.labels !== undefined) change.labels = { ...dto.labels };
  if (dto.interval !== undefined) change.interval = dto.interval;
  if (dto.agentMode !== undefined) change.agentMode = dto.agentMode;
  if (dto.agentVersion !== undefined) change.agentVersion = dto.agentVersion;
  if (Object.keys(change).length === 0) {
    throw validationFailed([{ field: '(body)', constraints: { atLeastOneField: `the body must set at least one of ${CHANGE_FIELDS.join(', ')}` } }]);
  }
  return change;
}
