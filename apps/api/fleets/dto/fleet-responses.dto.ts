import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { WorkflowRefDto } from '../../common/responses.dto';
import { MEMBER_PHASES } from './list-fleet-hosts.query';

export class FleetAcceptedDto {
  @ApiProperty({ example: 'web-eu' }) id!: string;
  @ApiProperty({ example: 'fleet/web-eu' }) workflowId!: string;
  @ApiProperty() runId!: string;
  @ApiProperty({ description: 'Hosts in the request' }) hosts!: number;
  @ApiProperty({ example: '/v1/fleets/web-eu' }) statusUrl!: string;
}

export class FleetRetryRecordDto {
  @ApiProperty({ example: 'retry-1' }) id!: string;
  @ApiProperty() requestedAtMs!: number;
  @ApiProperty({ description: 'Hosts the retry picked' }) hosts!: number;
  @ApiProperty({ type: [String], description: 'Which inputs it corrected (credential, port, bastion); never their values' }) corrected!: string[];
  @ApiPropertyOptional({ description: 'Hosts that refused the retry, with why' }) refused?: { hostId: string; why: string }[];
  @ApiPropertyOptional() endedAtMs?: number;
}

export class FleetDetailsDto extends WorkflowRefDto {
  @ApiProperty() id!: string;
  @ApiProperty({ enum: ['running', 'settled', 'closing', 'closed'], description: 'settled: no host is waiting for a slot or onboarding' }) state!: string;
  @ApiProperty() total!: number;
  @ApiProperty({ description: 'Hosts per phase', type: 'object', additionalProperties: { type: 'number' }, example: { healthy: 9, 'needs-credentials': 2, failed: 1 } })
  counts!: Record<string, number>;
  @ApiProperty({ description: 'Failed hosts per named failure', type: 'object', additionalProperties: { type: 'number' }, example: { HostUnreachable: 1 } })
  failures!: Record<string, number>;
  @ApiProperty({ description: 'Hosts onboarding now' }) active!: number;
  @ApiProperty() concurrency!: number;
  @ApiPropertyOptional() settledAtMs?: number;
  @ApiProperty({ type: [FleetRetryRecordDto] }) retries!: FleetRetryRecordDto[];
  @ApiProperty({ enum: ['memo', 'visibility'], description: 'memo: the fleet\'s own counts; visibility: not run by a worker yet' }) source!: string;
}

export class FleetListDto {
  @ApiProperty({ type: [FleetDetailsDto] }) items!: FleetDetailsDto[];
  @ApiProperty({ type: String, nullable: true }) nextPageToken!: string | null;
}

export class FleetMemberDto {
  @ApiProperty() hostId!: string;
  @ApiProperty() address!: string;
  @ApiProperty({ enum: MEMBER_PHASES, description: 'pending: waiting for a slot' }) phase!: string;
  @ApiPropertyOptional() reason?: string;
  @ApiPropertyOptional({ type: 'object', properties: { type: { type: 'string' }, message: { type: 'string' } } }) error?: { type: string; message: string };
  @ApiProperty() since!: number;
  @ApiProperty({ description: 'Times the fleet retried it' }) retries!: number;
  @ApiProperty({ example: '/v1/hosts/web-1' }) statusUrl!: string;
}

export class FleetHostsPageDto {
  @ApiProperty({ type: [FleetMemberDto] }) items!: FleetMemberDto[];
  @ApiProperty({ description: 'Hosts matching the filter' }) total!: number;
  @ApiPropertyOptional({ description: 'offset of the next page' }) nextOffset?: number;
}

export class FleetRetryAcceptedDto {
  @ApiProperty({ example: true }) accepted!: boolean;
  @ApiProperty({ example: 'retry-1' }) retryId!: string;
  @ApiProperty({ description: 'Hosts the retry picked' }) hosts!: number;
  @ApiProperty({ example: '/v1/fleets/web-eu' }) statusUrl!: string;
}
