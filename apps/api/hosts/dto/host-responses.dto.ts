import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { HOST_PHASES } from '../../../../workflows/host/state';
import { ActivityDto, WorkflowRefDto } from '../../common/responses.dto';

export class HostAcceptedDto {
  @ApiProperty({ example: 'web-1' }) id!: string;
  @ApiProperty({ example: 'onboard/web-1' }) workflowId!: string;
  @ApiProperty() runId!: string;
  @ApiProperty({ example: '/v1/hosts/web-1' }) statusUrl!: string;
}

export class ChangeAcceptedDto {
  @ApiProperty({ example: true }) accepted!: boolean;
  @ApiProperty({ description: 'The change\'s id: GET /v1/hosts/:id lists it in changes[] with its outcome once it ends', example: 'change-1' })
  changeId!: string;
  @ApiProperty({ example: '/v1/hosts/web-1', description: 'Where to follow it (also the Location header)' }) statusUrl!: string;
}

export class HostSummaryDto extends WorkflowRefDto {
  @ApiProperty() id!: string;
  @ApiPropertyOptional() address?: string;
  @ApiPropertyOptional({ enum: HOST_PHASES }) phase?: string;
}

export class HostListDto {
  @ApiProperty({ type: [HostSummaryDto] }) items!: HostSummaryDto[];
  @ApiProperty({ type: String, nullable: true, description: 'pass as pageToken for the next page' }) nextPageToken!: string | null;
}

export class TunnelBriefDto {
  @ApiProperty() id!: string;
  @ApiProperty({ example: 'connected', description: 'connecting | connected | reconnecting | stopped | unknown' }) state!: string;
  @ApiPropertyOptional({ description: 'TunnelStats' }) stats?: Record<string, unknown>;
}

export class TunnelReportDto {
  @ApiProperty() tunnelId!: string;
  @ApiProperty({ enum: ['connected', 'down', 'refused'], description: 'refused: the SSH server refused the forward (changed host key, refused login); the keeper waits' })
  state!: string;
  @ApiProperty({ description: 'Since when (ms since epoch)' }) since!: number;
  @ApiPropertyOptional({ type: 'object', properties: { type: { type: 'string' }, message: { type: 'string' } } }) error?: { type: string; message: string };
}

export class AgentConfigDto {
  @ApiProperty({ enum: ['artifact', 'repo'] }) mode!: string;
  @ApiPropertyOptional({ example: '10s' }) interval?: string;
  @ApiPropertyOptional({ description: 'repo mode: the pinned package version (absent: the newest)' }) version?: string;
}

export class AgentHealthDto {
  @ApiProperty({ enum: ['systemd', 'supervisor', 'none'], description: 'How Telegraf is run there (none: not installed)' }) manager!: string;
  @ApiProperty() running!: boolean;
  @ApiProperty({ description: "The manager's own words (systemd ActiveState/SubState, …)" }) state!: string;
  @ApiPropertyOptional({ description: "The newest error line of Telegraf's log, scrubbed and bounded" }) lastError?: string;
  @ApiProperty({ description: 'This check found it stopped and started it' }) restarted!: boolean;
  @ApiProperty() checkedAtMs!: number;
}

export class HostChangeDto {
  @ApiPropertyOptional({ type: 'object', additionalProperties: { type: 'string' } }) labels?: Record<string, string>;
  @ApiPropertyOptional() interval?: string;
  @ApiPropertyOptional({ enum: ['artifact', 'repo'] }) agentMode?: string;
  @ApiPropertyOptional() agentVersion?: string;
}

export class ChangeRecordDto {
  @ApiProperty() id!: string;
  @ApiProperty({ enum: ['change', 'rotate-key'] }) kind!: string;
  @ApiProperty() requestedAtMs!: number;
  @ApiPropertyOptional({ type: HostChangeDto, description: 'What a change asked for' }) change?: HostChangeDto;
  @ApiPropertyOptional({ description: 'Absent while it runs' }) endedAtMs?: number;
  @ApiPropertyOptional({ enum: ['applied', 'rolled-back', 'failed'], description: 'rolled-back: verification failed and the previous configuration is back' })
  outcome?: string;
  @ApiPropertyOptional() error?: string;
}

export class HostDetailsDto extends WorkflowRefDto {
  @ApiProperty() id!: string;
  @ApiProperty({ enum: ['memo', 'query', 'result', 'visibility'], description: 'Where the status came from: the running workflow\'s memo, a live query (runs without a memo), the result of a closed run, or only search attributes (no worker answered).' })
  source!: string;
  @ApiPropertyOptional({ enum: HOST_PHASES }) phase?: string;
  @ApiPropertyOptional() address?: string;
  @ApiProperty({ type: 'array', items: { type: 'object' }, description: 'StepRecord[]: step, startedAtMs, endedAtMs, attempts, status, error' })
  steps!: unknown[];
  @ApiPropertyOptional({ type: Object, description: 'HostFacts' }) facts?: object;
  @ApiPropertyOptional() hostKeySha256?: string;
  @ApiPropertyOptional({ description: "The bastion's pinned key (control path through a bastion)" }) bastionHostKeySha256?: string;
  @ApiPropertyOptional({ description: 'The key a mismatch stopped at (while onboarding or repairing), waiting for approval' }) offeredHostKeySha256?: string;
  @ApiPropertyOptional({ enum: ['target', 'bastion'], description: 'Which hop a needs-* phase (of the onboarding or a repair) waits on: the host itself or its bastion' }) waitingOn?: string;
  @ApiPropertyOptional() cloudrootUser?: string;
  @ApiPropertyOptional({ type: Object, description: 'AgentInstallSummary of the onboarding (agentConfig: the options in force now)' }) agent?: object;
  @ApiPropertyOptional({ type: Object, description: 'VerifyResult: pointsSeen, lastPointAtMs' }) verified?: object;
  @ApiPropertyOptional({ type: 'object', properties: { type: { type: 'string' }, message: { type: 'string' } } }) lastError?: { type: string; message: string };
  @ApiPropertyOptional({ type: TunnelBriefDto }) tunnel?: TunnelBriefDto;
  @ApiPropertyOptional({ enum: ['NoRecentPoints', 'TunnelDown', 'HostKeyMismatch', 'AgentDown', 'HostUnreachable'], description: 'Why the host is degraded (or being repaired)' })
  reason?: string;
  @ApiPropertyOptional({ description: 'When the host entered its current phase (ms since epoch)' }) since?: number;
  @ApiPropertyOptional({ type: 'array', items: { type: 'object' }, description: 'RepairRecord[]: atMs, reason, action, outcome, error' }) repairs?: unknown[];
  @ApiPropertyOptional({ description: 'Repairs within the last hour' }) repairsLastHour?: number;
  @ApiPropertyOptional({ description: 'Repaired again and again within an hour' }) flapping?: boolean;
  @ApiPropertyOptional({ type: Number, nullable: true, description: "Newest point of this host the freshness sweep saw" }) lastPointAtMs?: number | null;
  @ApiPropertyOptional({ type: [String], description: 'Offboarded: what could not be cleaned' }) notCleaned?: string[];
  @ApiPropertyOptional({ type: TunnelReportDto, description: "What the host's tunnel keeper last told the host (tunnel is the keeper's own live view)" })
  tunnelReport?: TunnelReportDto;
  @ApiPropertyOptional({ type: AgentHealthDto, description: 'The last agent check over SSH (a repair rung)' }) agentHealth?: AgentHealthDto;
  @ApiPropertyOptional({ type: AgentConfigDto, description: 'The agent options in force now (PATCH changes them; agent is the onboarding install summary)' })
  agentConfig?: AgentConfigDto;
  @ApiPropertyOptional({ type: 'object', additionalProperties: { type: 'string' }, description: 'The labels in force now' }) labels?: Record<string, string>;
  @ApiPropertyOptional({ type: [ChangeRecordDto], description: 'Changes and key rotations, newest last' }) changes?: ChangeRecordDto[];
  @ApiPropertyOptional({ type: [String], description: 'The fleets this host reports to' }) fleets?: string[];
  @ApiPropertyOptional({ description: 'How many times its failed onboarding was retried (from the failed step when its service login existed)' }) onboardingRetries?: number;
  @ApiProperty({ type: [ActivityDto], description: 'Activities running or retrying right now' }) activities!: ActivityDto[];
}
