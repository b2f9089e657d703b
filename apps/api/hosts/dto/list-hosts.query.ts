import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';
import { HOST_PHASES, type HostPhase } from '../../../../workflows/host/state';
import { PageQueryDto } from '../../common/page-query.dto';

export class ListHostsQueryDto extends PageQueryDto {
  @ApiPropertyOptional({ enum: HOST_PHASES })
  @IsOptional()
  @IsIn(HOST_PHASES)
  phase?: HostPhase;
}
