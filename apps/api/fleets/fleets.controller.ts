import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiAcceptedResponse, ApiBearerAuth, ApiOkResponse, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { ErrorResponseDto } from '../common/error-response.dto';
import type { HttpResponse } from '../common/http-types';
import { ParseIdPipe } from '../common/id-param.pipe';
import { PageQueryDto } from '../common/page-query.dto';
import { UpdateAcceptedDto } from '../common/responses.dto';
import { ApprovePlanDto, CreateFleetDto } from './dto/create-fleet.dto';
import { FleetAcceptedDto, FleetDetailsDto, FleetHostsPageDto, FleetListDto, FleetPlanDto, FleetRetryAcceptedDto } from './dto/fleet-responses.dto';
import { DeleteFleetQueryDto, ListFleetHostsQueryDto } from './dto/list-fleet-hosts.query';
import { RetryFleetDto } from './dto/retry-fleet.dto';
import { FleetsService } from './fleets.service';
import type { FleetPlan } from '../../../workflows/fleet/plan';

@ApiTags('fleets')
@ApiBearerAuth()
@ApiResponse({ status: 400, type: ErrorResponseDto, description: 'VALIDATION_FAILED / MALFORMED_JSON' })
@ApiResponse({ status: 401, type: ErrorResponseDto })
@ApiResponse({ status: 503, type: ErrorResponseDto, description: 'TEMPORAL_UNAVAILABLE' })
@Controller('v1/fleets')
export class FleetsController {
  constructor(private readonly fleets: FleetsService) {}

  @Post()
  @HttpCode(202)
  @ApiOperation({ summary: 'Onboard a fleet: up to 5,000 hosts with shared defaults, a bounded number at once (each host is its own host/<id>)' })
  @ApiAcceptedResponse({ type: FleetAcceptedDto })
  @ApiResponse({ status: 403, type: ErrorResponseDto })
  async create(@Body() dto: CreateFleetDto, @Res({ passthrough: true }) res: HttpResponse): Promise<FleetAcceptedDto> {
    const accepted = await this.fleets.create(dto);
    res.setHeader('Location', accepted.statusUrl);
    return accepted;
  }

  @Get()
  @ApiOperation({ summary: 'List fleets with their counts per phase' })
  @ApiOkResponse({ type: FleetListDto })
  list(@Query() query: PageQueryDto): Promise<FleetListDto> {
    return this.fleets.list(query);
  }

  @Get(':id')
  @ApiOperation({ summary: 'A fleet: state, counts per phase, named failures, retries' })
  @ApiOkResponse({ type: FleetDetailsDto })
  @ApiResponse({ status: 404, type: ErrorResponseDto, description: 'FLEET_NOT_FOUND' })
  get(@Param('id', ParseIdPipe) id: string): Promise<FleetDetailsDto> {
    return this.fleets.get(id);
  }

  @Get(':id/hosts')
  @ApiOperation({ summary: "A page of the fleet's hosts, optionally only those in one phase" })
  @ApiOkResponse({ type: FleetHostsPageDto })
  @ApiResponse({ status: 404, type: ErrorResponseDto, description: 'FLEET_NOT_FOUND' })
  hosts(@Param('id', ParseIdPipe) id: string, @Query() query: ListFleetHostsQueryDto): Promise<FleetHostsPageDto> {
    return this.fleets.hosts(id, query);
  }

  @Post(':id/retry')
  @HttpCode(202)
  @ApiOperation({
    summary: 'Retry the hosts that failed or wait for credentials, each from its failed step, optionally with corrected inputs',
    description: 'Nothing that succeeded runs again. needs-credentials hosts get `credential`; failed hosts onboard again with the corrections.',
  })
  @ApiAcceptedResponse({ type: FleetRetryAcceptedDto })
  @ApiResponse({ status: 409, type: ErrorResponseDto, description: 'nothing to retry, a host not in the fleet, or the fleet is closing' })
  async retry(@Param('id', ParseIdPipe) id: string, @Body() dto: RetryFleetDto, @Res({ passthrough: true }) res: HttpResponse): Promise<FleetRetryAcceptedDto> {
    const accepted = await this.fleets.retry(id, dto);
    res.setHeader('Location', accepted.statusUrl);
    return accepted;
  }

  @Get(':id/plan')
  @ApiOperation({ summary: 'What the next reconcile pass would do (a dry run: reads the source, applies nothing)' })
  @ApiOkResponse({ type: FleetPlanDto })
  @ApiResponse({ status: 409, type: ErrorResponseDto, description: 'the fleet has no source, or is not running' })
  @ApiResponse({ status: 422, type: ErrorResponseDto, description: 'INVENTORY_UNREADABLE' })
  plan(@Param('id', ParseIdPipe) id: string): Promise<FleetPlan> {
    return this.fleets.plan(id);
  }

  @Post(':id/plan/approve')
  @HttpCode(200)
  @ApiOperation({ summary: 'Apply the pass held for approval (it would offboard more than maxOffboardShare), named by its digest' })
  @ApiOkResponse({ type: FleetPlanDto })
  @ApiResponse({ status: 409, type: ErrorResponseDto, description: 'no plan waits, or a different one (read the plan again)' })
  async approvePlan(@Param('id', ParseIdPipe) id: string, @Body() dto: ApprovePlanDto): Promise<FleetPlan> {
    return (await this.fleets.approvePlan(id, dto.digest)).plan;
  }

  @Delete(':id')
  @HttpCode(202)
  @ApiOperation({ summary: 'End the fleet; its hosts stay monitored unless ?offboard=true' })
  @ApiAcceptedResponse({ type: UpdateAcceptedDto })
  @ApiResponse({ status: 409, type: ErrorResponseDto, description: 'already closing or closed' })
  remove(@Param('id', ParseIdPipe) id: string, @Query() query: DeleteFleetQueryDto): Promise<{ accepted: true }> {
    return this.fleets.remove(id, query.offboard === 'true');
  }
}
