import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { ThrottlerException } from '@nestjs/throttler';
import type { HttpResponse as Response } from './http-types';
import { ApiError, type ErrorBody } from './api-error';
import { codeForStatus, ErrorCode } from './error-codes';
import { temporalErrorToApiError } from '../temporal/temporal-errors';

/** Turns anything thrown into `{ statusCode, code, message }`; never leaks stacks, bodies or secrets. */
@Catch()
export class ApiExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('ApiExceptionFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    const body = this.toBody(exception);
    if (body.statusCode >= 500) {
      const err = exception as Error;
      // Name and message only: request bodies (which may hold secrets) are never logged.
      this.logger.error(`${body.code}: ${err?.name ?? 'Error'}: ${err?.message ?? String(exception)}`);
    }
    sendError(res, body);
  }

  toBody(exception: unknown): ErrorBody {
    if (exception instanceof ApiError) return exception.body;
    if (exception instanceof ThrottlerException) {
      return { statusCode: 429, code: ErrorCode.RateLimited, message: 'too many requests' };
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const response = exception.getResponse();
      const message =
        status === 404 ? 'no such route' : typeof response === 'string' ? response : (exception.message ?? 'error');
      return { statusCode: status, code: codeForStatus(status), message: status >= 500 ? 'internal error' : message };
    }
    const mapped = temporalErrorToApiError(exception);
    if (mapped) return mapped.body;
    return { statusCode: 500, code: ErrorCode.Internal, message: 'internal error' };
  }
}

export function sendError(res: Response, body: ErrorBody): void {
  if (res.headersSent) return;
  if (body.code === ErrorCode.Unauthenticated) res.setHeader('WWW-Authenticate', 'Bearer realm="agent-onboarding"');
  res.status(body.statusCode).json(body);
}
