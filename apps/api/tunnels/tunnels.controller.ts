import { Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { ParseIdPipe } from '../common/id-param.pipe';
import { ErrorResponseDto } from '../common/error-response.dto';
import { PageQueryDto } from '../common/page-query.dto';
import { TunnelDetailsDto, TunnelListDto, TunnelRestartedDto, TunnelStoppedDto } from './dto/tunnel-responses.dto';
import { TunnelsService } from './tunnels.service';

@ApiTags('tunnels')
@ApiBearerAuth()
@ApiResponse({ status: 401, type: ErrorResponseDto })
@Controller('v1/tunnels')
export class TunnelsController {
  constructor(private readonly tunnels: TunnelsService) {}

  @Get()
  @ApiOperation({ summary: 'List tunnel keepers (Temporal visibility)' })
  @ApiOkResponse({ type: TunnelListDto })
  list(@Query() query: PageQueryDto): Promise<TunnelListDto> {
    return this.tunnels.list(query);
  }

  @Get(':id')
  @ApiOperation({ summary: 'Tunnel state, stats, current attempt and last failure' })
  @ApiOkResponse({ type: TunnelDetailsDto })
  @ApiResponse({ status: 404, type: ErrorResponseDto })
  get(@Param('id', ParseIdPipe) id: string): Promise<TunnelDetailsDto> {
    return this.tunnels.get(id);
  }

  @Post(':id/restart')
  @HttpCode(200)
  @ApiOperation({ summary: 'Drop the SSH session and reconnect now' })
  @ApiOkResponse({ type: TunnelRestartedDto })
  @ApiResponse({ status: 409, type: ErrorResponseDto })
  restart(@Param('id', ParseIdPipe) id: string): Promise<{ restarted: true }> {
    return this.tunnels.restart(id);
  }

  @Delete(':id')
  @ApiOperation({ summary: 'Stop the tunnel keeper' })
  @ApiOkResponse({ type: TunnelStoppedDto })
  @ApiResponse({ status: 409, type: ErrorResponseDto })
  stop(@Param('id', ParseIdPipe) id: string): Promise<{ stopped: true }> {
    return this.tunnels.stop(id);
  }
}
