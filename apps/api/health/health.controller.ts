import { Controller, Get } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { SkipThrottle } from '@nestjs/throttler';
import { Public } from '../auth/roles.decorator';
import { ApiError } from '../common/api-error';
import { ErrorCode } from '../common/error-codes';
import { ErrorResponseDto } from '../common/error-response.dto';
import { TemporalGateway } from '../temporal/temporal.gateway';
import { temporalErrorToApiError } from '../temporal/temporal-errors';

const READINESS_DEADLINE_MS = 3_000;

@ApiTags('health')
@Public()
@SkipThrottle()
@Controller()
export class HealthController {
  constructor(private readonly temporal: TemporalGateway) {}

  @Get('healthz')
  @ApiOperation({ summary: 'Liveness: the process serves requests' })
  @ApiOkResponse({ schema: { example: { status: 'ok' } } })
  healthz(): { status: 'ok'; uptimeSeconds: number } {
    return { status: 'ok', uptimeSeconds: Math.round(process.uptime()) };
  }

  @Get('readyz')
  @ApiOperation({ summary: 'Readiness: Temporal answers' })
  @ApiOkResponse({ schema: { example: { status: 'ready', temporal: { serverVersion: '1.29.1' } } } })
  @ApiResponse({ status: 503, type: ErrorResponseDto })
  async readyz(): Promise<{ status: 'ready'; temporal: { serverVersion: string } }> {
    try {
      const info = await this.temporal.call(() => this.temporal.client.workflowService.getSystemInfo({}), READINESS_DEADLINE_MS);
      return { status: 'ready', temporal: { serverVersion: info.serverVersion ?? '' } };
    } catch (err) {
      const mapped = temporalErrorToApiError(err);
      // Not ready for any reason we can name: unreachable, slow, or refusing.
      throw new ApiError(503, ErrorCode.TemporalUnavailable, `Temporal is not ready${mapped ? ` (${mapped.code})` : ''}`);
    }
  }
}
