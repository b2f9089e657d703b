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

export class FleetSourceViewDto {
  @ApiProperty({ enum: ['ansible-inventory', 'file', 'http'] }) kind!: string;
  @ApiPropertyOptional() path?: string;
  @ApiPropertyOptional() url?: string;
  @ApiPropertyOptional() group?: string;
  @ApiPropertyOptional() lastReadAtMs?: number;
  @ApiPropertyOptional({ description: 'sha256 of the hosts the source listed at the last read' }) lastDigest?: string;
  @ApiPropertyOptional({ description: 'the last pass could not read the source (INVENTORY_UNREADABLE, InvalidInput: not in the allowlist)' }) lastError?: { type: string; message: string; atMs: number };
  @ApiPropertyOptional({ description: 'what the last applied pass did, in counts' }) lastApplied?: Record<string, number>;
  @ApiPropertyOptional({ description: 'a pass held for approval: POST …/plan/approve with its digest applies it' }) held?: { digest: string; remove: number; allowed: number; reason: string; atMs: number };
}

export class FleetPlanDto {
  @ApiProperty({ description: 'approve with this digest' }) digest!: string;
  @ApiProperty() readAtMs!: number;
  @ApiProperty({ description: 'hosts a pass would onboard' }) add!: { hostId: string; address: string }[];
  @ApiProperty({ description: 'hosts a pass would offboard' }) remove!: { hostId: string; address: string }[];
  @ApiProperty({ description: 'hosts whose labels a pass would change' }) relabel!: { hostId: string; labels: Record<string, string> }[];
  @ApiProperty({ description: 'listed hosts with a change a pass does not apply (address, port, login, data path)' }) unsupported!: { hostId: string; why: string }[];
  @ApiProperty() unchanged!: number;
  @ApiProperty({ description: 'source entries left out, with why' }) ignored!: { name: string; why: string }[];
  @ApiPropertyOptional({ description: 'the pass would stop for approval: it offboards more than allowed' }) held?: { allowed: number; reason: string };
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
  @ApiPropertyOptional({ type: () => FleetSourceViewDto, description: 'A fleet reconciled with an inventory source: the source and its last passes' }) inventory?: FleetSourceViewDto;
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
