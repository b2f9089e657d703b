import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

/** Shapes shared by host and tunnel responses (documentation for /docs; services return plain objects). */
export class ActivityDto {
  @ApiProperty() activityId!: string;
  @ApiProperty({ example: 'holdReverseForward' }) activityType!: string;
  @ApiProperty({ example: 'started', description: 'scheduled | started | cancel_requested | paused | …' }) state!: string;
  @ApiProperty({ description: 'Current attempt (1-based)' }) attempt!: number;
  @ApiProperty({ description: '0 = unlimited' }) maximumAttempts!: number;
  @ApiPropertyOptional() lastStartedAt?: string;
  @ApiPropertyOptional() lastHeartbeatAt?: string;
  @ApiPropertyOptional() nextAttemptAt?: string;
  @ApiPropertyOptional({ description: 'Last heartbeat details (decoded)' }) heartbeatDetails?: unknown;
  @ApiPropertyOptional({ type: 'object', properties: { type: { type: 'string' }, message: { type: 'string' } } })
  lastFailure?: { type?: string; message: string };
}

export class WorkflowRefDto {
  @ApiProperty() workflowId!: string;
  @ApiProperty() runId!: string;
  @ApiProperty({ example: 'RUNNING', description: 'Temporal execution status' }) workflowStatus!: string;
  @ApiProperty() startedAt!: string;
  @ApiPropertyOptional() closedAt?: string;
}

export class UpdateAcceptedDto {
  @ApiProperty({ example: true }) accepted!: boolean;
  @ApiPropertyOptional({ enum: ['target', 'bastion'], description: 'The hop the answer was applied to' }) hop?: string;
}
