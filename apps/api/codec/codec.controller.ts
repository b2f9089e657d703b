import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiExcludeController, ApiOkResponse, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { DevCodecCapability, RequireRole } from '../auth/roles.decorator';
import { ErrorResponseDto } from '../common/error-response.dto';
import { CodecService, type WirePayload } from './codec.service';
import { CodecRequestDto } from './dto/codec.dto';

/**
 * Temporal's codec-server protocol, for the Web UI (`--ui-codec-endpoint`). Viewers may decode; encoding (which
 * lets a caller forge payloads the workers accept, e.g. a signal or a start from the UI) is for operators.
 */
@ApiTags('codec')
@ApiBearerAuth()
@ApiResponse({ status: 401, type: ErrorResponseDto })
@RequireRole('viewer')
@Controller('codec')
export class CodecController {
  constructor(private readonly codec: CodecService) {}

  @Post('encode')
  @HttpCode(200)
  @RequireRole('operator')
  @ApiOperation({ summary: 'Encrypt payloads with the current key (operator)' })
  @ApiOkResponse({ type: CodecRequestDto })
  @ApiResponse({ status: 403, type: ErrorResponseDto, description: 'FORBIDDEN: a viewer token' })
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

/**
 * The dev stack's codec endpoint: the dev server's UI has no login to forward a token, so `npm start` gives it
 * `/codec/dev/<random secret>` as its codec URL. Decode only (there is no encode here). Registered only when
 * AO_DEV_CODEC_SECRET is set, which the config allows only on a loopback API; not part of the public contract.
 */
@ApiExcludeController()
@DevCodecCapability()
@Controller('codec/dev/:capability')
export class DevCodecController {
  constructor(private readonly codec: CodecService) {}

  @Post('decode')
  @HttpCode(200)
  decode(@Body() body: CodecRequestDto): Promise<{ payloads: WirePayload[] }> {
    return this.codec.decode(body.payloads);
  }
}
