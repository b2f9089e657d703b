import 'reflect-metadata';
import type { INestApplication, LoggerService, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { SwaggerModule } from '@nestjs/swagger';
import type { Client } from '@temporalio/client';
import helmet from 'helmet';
import type { ApiConfig } from '../../lib/config';
import { AppModule, type RateLimit } from './app.module';
import { codecCors } from './codec/codec-cors';
import { installBodyParsing, type BodyLimits } from './common/body-parsing';
import { JsonNestLogger } from './common/json-logger';
import { buildOpenApiDocument } from './openapi-document';
import { DEFAULT_TEMPORAL_TIMEOUTS, type TemporalTimeouts } from './temporal/temporal.gateway';

export interface CreateAppOptions {
  config: ApiConfig;
  client: Client;
  timeouts?: Partial<TemporalTimeouts>;
  rateLimit?: RateLimit;
  bodyLimits?: Partial<BodyLimits>;
  logger?: LoggerService | LogLevel[] | false;
  /** Serve Swagger UI at /docs and the document at /docs-json (default true). */
  docs?: boolean;
}

/** Generous: a person or a script polling a few hosts never meets it; a runaway loop does. */
export const DEFAULT_RATE_LIMIT: RateLimit = { limit: 1200, windowMs: 60_000 };
export const DEFAULT_BODY_LIMITS: BodyLimits = { api: '64kb', codec: '8mb', fleets: '4mb' };

/** The configured, initialised app (not listening): `main.ts` listens, tests use `app.getHttpServer()`. */
export async function createApp(opts: CreateAppOptions): Promise<INestApplication> {
  const { config, client } = opts;
  const app = await NestFactory.create(
    AppModule.forRoot({
      config,
      client,
      timeouts: { ...DEFAULT_TEMPORAL_TIMEOUTS, ...opts.timeouts },
      rateLimit: opts.rateLimit ?? DEFAULT_RATE_LIMIT,
    }),
    { bodyParser: false, logger: opts.logger ?? new JsonNestLogger(), abortOnError: false },
  );
  // Who the client is (req.ip, what rate limiting counts per): the socket's peer unless proxies are trusted.
  app.getHttpAdapter().getInstance().set('trust proxy', config.api.trustProxy ?? false);
  app.use(helmet());
  app.use('/codec', codecCors(config.api.uiOrigin));
  installBodyParsing(app, { ...DEFAULT_BODY_LIMITS, ...opts.bodyLimits });
  if (opts.docs !== false) SwaggerModule.setup('docs', app, buildOpenApiDocument(app));
  await app.init();
  return app;
}
