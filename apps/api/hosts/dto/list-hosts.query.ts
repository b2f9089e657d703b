import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';
import { ONBOARDING_PHASES, type OnboardingPhase } from '../../../../workflows/contracts';
import { PageQueryDto } from '../../common/page-query.dto';

export class ListHostsQueryDto extends PageQueryDto {
  @ApiPropertyOptional({ enum: ONBOARDING_PHASES })
  @IsOptional()
  @IsIn(ONBOARDING_PHASES)
  phase?: OnboardingPhase;
}
