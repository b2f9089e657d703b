import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsOptional, Max, Min } from 'class-validator';
import { HOST_PHASES } from '../../../../workflows/host/state';

export const MEMBER_PHASES = ['pending', ...HOST_PHASES] as const;

/** A page of a fleet's hosts, optionally only those in one phase. */
export class ListFleetHostsQueryDto {
  @ApiPropertyOptional({ enum: MEMBER_PHASES })
  @IsOptional()
  @IsIn(MEMBER_PHASES)
  phase?: (typeof MEMBER_PHASES)[number];

  @ApiPropertyOptional({ minimum: 1, maximum: 500, default: 100 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(500)
  pageSize: number = 100;

  @ApiPropertyOptional({ minimum: 0, description: 'Offset of the page (nextOffset of the previous page).' })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  offset: number = 0;
}

export class DeleteFleetQueryDto {
  @ApiPropertyOptional({ description: 'Also offboard every host of the fleet (default: they stay monitored, only the grouping ends).', default: false })
  @IsOptional()
  @IsIn(['true', 'false'])
  offboard?: 'true' | 'false';
}
