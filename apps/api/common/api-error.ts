import { HttpException } from '@nestjs/common';
import { ErrorCode } from './error-codes';

export interface FieldError {
  field: string;
  constraints: Record<string, string>;
}

/** The one error body every endpoint returns. */
export interface ErrorBody {
  statusCode: number;
  code: ErrorCode;
  message: string;
  errors?: FieldError[];
}

/** An HTTP error with a stable code; the exception filter renders it as is. */
export class ApiError extends HttpException {
  constructor(
    status: number,
    readonly code: ErrorCode,
    message: string,
    readonly errors?: FieldError[],
  ) {
    super({ statusCode: status, code, message, ...(errors ? { errors } : {}) } satisfies ErrorBody, status);
    this.name = 'ApiError';
  }

  get body(): ErrorBody {
    return this.getResponse() as ErrorBody;
  }
}

export function validationFailed(errors: FieldError[]): ApiError {
  const fields = [...new Set(errors.map((e) => e.field))].join(', ');
  return new ApiError(400, ErrorCode.ValidationFailed, `invalid request: ${fields}`, errors);
}
