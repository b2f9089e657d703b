import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ActivityDto, WorkflowRefDto } from '../../common/responses.dto';

export class TunnelSummaryDto extends WorkflowRefDto {
  @ApiProperty() id!: string;
}

export class TunnelListDto {
  @ApiProperty({ type: [TunnelSummaryDto] }) items!: TunnelSummaryDto[];
  @ApiProperty({ type: String, nullable: true }) nextPageToken!: string | null;
}

export class TunnelDetailsDto extends WorkflowRefDto {
  @ApiProperty() id!: string;
  @ApiProperty({ enum: ['query', 'visibility'] }) source!: string;
  @ApiProperty({ example: 'connected', description: 'connecting | connected | reconnecting | stopped | unknown' }) state!: string;
  @ApiPropertyOptional({ type: Object, description: 'TunnelStats (live from the query, else the last heartbeat)' }) stats?: Record<string, unknown>;
  @ApiPropertyOptional({ description: 'Attempt of the forward-holding activity' }) attempt?: number;
  @ApiPropertyOptional() lastFailure?: string;
  @ApiProperty({ type: [ActivityDto] }) activities!: ActivityDto[];
}

export class TunnelStoppedDto {
  @ApiProperty({ example: true }) stopped!: boolean;
}

export class TunnelRestartedDto {
  @ApiProperty({ example: true }) restarted!: boolean;
}
