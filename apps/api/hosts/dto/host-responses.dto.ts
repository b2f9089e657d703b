import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { HOST_PHASES } from '../../../../workflows/host/state';
import { ActivityDto, WorkflowRefDto } from '../../common/responses.dto';

export class HostAcceptedDto {
  @ApiProperty({ example: 'web-1' }) id!: string;
  @ApiProperty({ example: 'onboard/web-1' }) workflowId!: string;
  @ApiProperty() runId!: string;
  @ApiProperty({ example: '/v1/hosts/web-1' }) statusUrl!: string;
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
  @ApiPropertyOptional({ description: 'The key a mismatch stopped at, waiting for approval' }) offeredHostKeySha256?: string;
  @ApiPropertyOptional({ enum: ['target', 'bastion'], description: 'Which hop a needs-* phase waits on: the host itself or its bastion' }) waitingOn?: string;
  @ApiPropertyOptional() cloudrootUser?: string;
  @ApiPropertyOptional({ type: Object, description: 'AgentInstallSummary' }) agent?: object;
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
  @ApiProperty({ type: [ActivityDto], description: 'Activities running or retrying right now' }) activities!: ActivityDto[];
}
