import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, Res } from '@nestjs/common';
import { ApiAcceptedResponse, ApiBearerAuth, ApiOkResponse, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { ErrorResponseDto } from '../common/error-response.dto';
import type { HttpResponse } from '../common/http-types';
import { ParseIdPipe } from '../common/id-param.pipe';
import { UpdateAcceptedDto } from '../common/responses.dto';
import { ApproveHostKeyDto } from './dto/approve-host-key.dto';
import { CreateHostDto } from './dto/create-host.dto';
import { ProvideCredentialsDto } from './dto/credentials.dto';
import { ChangeAcceptedDto, HostAcceptedDto, HostDetailsDto, HostListDto } from './dto/host-responses.dto';
import { ListHostsQueryDto } from './dto/list-hosts.query';
import { toHostChange, UpdateHostDto } from './dto/update-host.dto';
import { HostsService } from './hosts.service';

@ApiTags('hosts')
@ApiBearerAuth()
@ApiResponse({ status: 400, type: ErrorResponseDto, description: 'VALIDATION_FAILED / MALFORMED_JSON' })
@ApiResponse({ status: 401, type: ErrorResponseDto })
@ApiResponse({ status: 503, type: ErrorResponseDto, description: 'TEMPORAL_UNAVAILABLE' })
@Controller('v1/hosts')
export class HostsController {
  constructor(private readonly hosts: HostsService) {}

  @Post()
  @HttpCode(202)
  @ApiOperation({ summary: 'Onboard a host (idempotent per host id)' })
  @ApiAcceptedResponse({ type: HostAcceptedDto })
  @ApiResponse({ status: 403, type: ErrorResponseDto })
  async create(@Body() dto: CreateHostDto, @Res({ passthrough: true }) res: HttpResponse): Promise<HostAcceptedDto> {
    const accepted = await this.hosts.create(dto);
    res.setHeader('Location', accepted.statusUrl);
    return accepted;
  }

  @Get()
  @ApiOperation({ summary: 'List onboardings (Temporal visibility), optionally by phase' })
  @ApiOkResponse({ type: HostListDto })
  list(@Query() query: ListHostsQueryDto): Promise<HostListDto> {
    return this.hosts.list(query);
  }

  @Get(':id')
  @ApiOperation({ summary: 'Phase, step timeline, facts, host key, tunnel state, live activity attempts' })
  @ApiOkResponse({ type: HostDetailsDto })
  @ApiResponse({ status: 404, type: ErrorResponseDto, description: 'HOST_NOT_FOUND' })
  get(@Param('id', ParseIdPipe) id: string): Promise<HostDetailsDto> {
    return this.hosts.get(id);
  }

  @Patch(':id')
  @HttpCode(202)
  @ApiOperation({
    summary: "Change a healthy (or degraded) host's agent: labels (replace all), interval, install mode, package version",
    description: 'The host re-runs the role and verifies that points arrive; a failed verification rolls the change back. Follow it in GET changes[].',
  })
  @ApiAcceptedResponse({ type: ChangeAcceptedDto })
  @ApiResponse({ status: 404, type: ErrorResponseDto, description: 'HOST_NOT_FOUND (no host entity)' })
  @ApiResponse({ status: 409, type: ErrorResponseDto, description: 'the host refused: not healthy or degraded, a change or key rotation in flight, offboarding, agentVersion for a host not in repo mode' })
  async change(@Param('id', ParseIdPipe) id: string, @Body() dto: UpdateHostDto, @Res({ passthrough: true }) res: HttpResponse): Promise<ChangeAcceptedDto> {
    const accepted = await this.hosts.change(id, toHostChange(dto));
    res.setHeader('Location', accepted.statusUrl);
    return accepted;
  }

  @Post(':id/rotate-key')
  @HttpCode(202)
  @ApiOperation({ summary: 'Give cloudroot a new key; the old one is removed only after the new one is proven' })
  @ApiAcceptedResponse({ type: ChangeAcceptedDto })
  @ApiResponse({ status: 404, type: ErrorResponseDto, description: 'HOST_NOT_FOUND (no host entity)' })
  @ApiResponse({ status: 409, type: ErrorResponseDto, description: 'the host refused: not healthy or degraded, a change or key rotation in flight, offboarding' })
  async rotateKey(@Param('id', ParseIdPipe) id: string, @Res({ passthrough: true }) res: HttpResponse): Promise<ChangeAcceptedDto> {
    const accepted = await this.hosts.rotateKey(id);
    res.setHeader('Location', accepted.statusUrl);
    return accepted;
  }

  @Delete(':id')
  @HttpCode(202)
  @ApiOperation({ summary: 'Offboard a host: stop its tunnel, uninstall Telegraf, remove cloudroot; ends offboarded (GET shows notCleaned)' })
  @ApiAcceptedResponse({ type: UpdateAcceptedDto })
  @ApiResponse({ status: 404, type: ErrorResponseDto, description: 'HOST_NOT_FOUND (no host entity)' })
  @ApiResponse({ status: 409, type: ErrorResponseDto, description: 'already offboarding or offboarded' })
  remove(@Param('id', ParseIdPipe) id: string): Promise<{ accepted: true }> {
    return this.hosts.remove(id);
  }

  @Post(':id/credentials')
  @HttpCode(200)
  @ApiOperation({ summary: 'New credentials for an onboarding in needs-credentials (the host\'s bootstrap login, or its bastion\'s: hop)' })
  @ApiOkResponse({ type: UpdateAcceptedDto })
  @ApiResponse({ status: 409, type: ErrorResponseDto, description: 'not waiting for credentials' })
  provideCredentials(@Param('id', ParseIdPipe) id: string, @Body() dto: ProvideCredentialsDto): Promise<{ accepted: true }> {
    return this.hosts.provideCredentials(id, dto);
  }

  @Post(':id/host-key/approve')
  @HttpCode(200)
  @ApiOperation({ summary: 'Approve the host key offered after a mismatch (the host\'s, or its bastion\'s: hop)' })
  @ApiOkResponse({ type: UpdateAcceptedDto })
  @ApiResponse({ status: 409, type: ErrorResponseDto, description: 'not waiting for a host key approval, or a different key' })
  approveHostKey(@Param('id', ParseIdPipe) id: string, @Body() dto: ApproveHostKeyDto): Promise<{ accepted: true }> {
    return this.hosts.approveHostKey(id, dto.hostKeySha256, dto.hop);
  }
}
