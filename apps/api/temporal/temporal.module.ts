import { DynamicModule, Global, Module } from '@nestjs/common';
import type { Client } from '@temporalio/client';
import type { ApiConfig } from '../../../lib/config';
import { TemporalGateway, type TemporalTimeouts } from './temporal.gateway';

/** Injection tokens: tests pass a real Client (dev server, or an address where nothing listens). */
export const TEMPORAL_CLIENT = Symbol('TEMPORAL_CLIENT');
export const APP_CONFIG = Symbol('APP_CONFIG');

@Global()
@Module({})
export class TemporalModule {
  static forClient(client: Client, config: ApiConfig, timeouts: TemporalTimeouts): DynamicModule {
    return {
      module: TemporalModule,
      providers: [
        { provide: TEMPORAL_CLIENT, useValue: client },
        { provide: APP_CONFIG, useValue: config },
        { provide: TemporalGateway, useFactory: () => new TemporalGateway(client, config, timeouts) },
      ],
      exports: [TEMPORAL_CLIENT, APP_CONFIG, TemporalGateway],
    };
  }
}
