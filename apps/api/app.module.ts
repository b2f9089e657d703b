import { DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, APP_PIPE } from '@nestjs/core';
import { ThrottlerGuard, ThrottlerModule } from '@nestjs/throttler';
import type { Client } from '@temporalio/client';
import type { ApiConfig } from '../../lib/config';
import { BearerAuthGuard } from './auth/bearer-auth.guard';
import { CodecModule } from './codec/codec.module';
import { ApiExceptionFilter } from './common/api-exception.filter';
import { createValidationPipe } from './common/validation';
import { HealthModule } from './health/health.module';
import { FleetsModule } from './fleets/fleets.module';
import { HostsModule } from './hosts/hosts.module';
import { TemporalModule } from './temporal/temporal.module';
import type { TemporalTimeouts } from './temporal/temporal.gateway';
import { TunnelsModule } from './tunnels/tunnels.module';

export interface RateLimit {
  /** Requests per client address per window. */
  limit: number;
  windowMs: number;
}

export interface AppModuleOptions {
  config: ApiConfig;
  client: Client;
  timeouts: TemporalTimeouts;
  rateLimit: RateLimit;
}

@Module({})
export class AppModule {
  static forRoot(opts: AppModuleOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        TemporalModule.forClient(opts.client, opts.config, opts.timeouts),
        ThrottlerModule.forRoot({
          throttlers: [{ ttl: opts.rateLimit.windowMs, limit: opts.rateLimit.limit }],
          // One budget per client address across all routes (the default is per route).
          generateKey: (_context, tracker, throttlerName) => `${throttlerName}:${tracker}`,
        }),
        HostsModule,
        FleetsModule,
        TunnelsModule,
        HealthModule,
        CodecModule.forConfig(opts.config),
      ],
      providers: [
        // Guards run in this order: throttling first, so guessing tokens is rate limited too.
        { provide: APP_GUARD, useClass: ThrottlerGuard },
        { provide: APP_GUARD, useClass: BearerAuthGuard },
        { provide: APP_FILTER, useClass: ApiExceptionFilter },
        { provide: APP_PIPE, useFactory: createValidationPipe },
      ],
    };
  }
}
