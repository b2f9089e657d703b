import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RequireRole } from '../auth/roles.decorator';
import { ErrorResponseDto } from '../common/error-response.dto';
import { CodecService, type WirePayload } from './codec.service';
import { CodecRequestDto } from './dto/codec.dto';

/** Temporal's codec-server protocol, for the Web UI (`--ui-codec-endpoint`). Viewers may decode. */
@ApiTags('codec')
@ApiBearerAuth()
@ApiResponse({ status: 401, type: ErrorResponseDto })
@RequireRole('viewer')
@Controller('codec')
export class CodecController {
  constructor(private readonly codec: CodecService) {}

  @Post('encode')
  @HttpCode(200)
  @ApiOperation({ summary: 'Encrypt payloads with the current key' })
  @ApiOkResponse({ type: CodecRequestDto })
  encode(@Body() body: CodecRequestDto): Promise<{ payloads: WirePayload[] }> {
    return this.codec.encode(body.payloads);
  }

  @Post('decode')
  @HttpCode(200)
  @ApiOperation({ summary: 'Decrypt payloads (sealed secrets inside stay sealed)' })
  @ApiOkResponse({ type: CodecRequestDto })
  @ApiResponse({ status: 400, type: ErrorResponseDto, description: 'CODEC_FAILED' })
  decode(@Body() body: CodecRequestDto): Promise<{ payloads: WirePayload[] }> {
    return this.codec.decode(body.payloads);
  }
}
