import type { LoggerService } from '@nestjs/common';
import { createLogger, type Logger } from '../../../lib/logging';

/** Nest's own log lines (startup, route map, filter errors) in our one-line JSON format. */
export class JsonNestLogger implements LoggerService {
  private readonly logger: Logger = createLogger('api');

  log(message: unknown, context?: string): void {
    this.logger.info(String(message), context ? { context } : undefined);
  }
  error(message: unknown, stackOrContext?: string, context?: string): void {
    this.logger.error(String(message), { context: context ?? stackOrContext });
  }
  warn(message: unknown, context?: string): void {
    this.logger.warn(String(message), context ? { context } : undefined);
  }
  debug(message: unknown, context?: string): void {
    this.logger.debug(String(message), context ? { context } : undefined);
  }
  verbose(message: unknown, context?: string): void {
    this.logger.debug(String(message), context ? { context } : undefined);
  }
}
