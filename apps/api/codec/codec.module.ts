import { DynamicModule, Module } from '@nestjs/common';
import type { ApiConfig } from '../../../lib/config';
import { CodecController, DevCodecController } from './codec.controller';
import { CodecService } from './codec.service';

@Module({})
export class CodecModule {
  /** The dev capability route exists only when the (dev stack's) config has a secret for it. */
  static forConfig(config: ApiConfig): DynamicModule {
    return {
      module: CodecModule,
      controllers: config.api.devCodecSecret ? [CodecController, DevCodecController] : [CodecController],
      providers: [CodecService],
    };
  }
}
