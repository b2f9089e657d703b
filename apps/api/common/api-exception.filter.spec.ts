import { BadRequestException, NotFoundException } from '@nestjs/common';
import { ThrottlerException } from '@nestjs/throttler';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { ApiError } from './api-error';
import { ApiExceptionFilter } from './api-exception.filter';
import { ErrorCode } from './error-codes';

describe('ApiExceptionFilter.toBody', () => {
  const filter = new ApiExceptionFilter();

  it.each([
    ['ApiError as is', new ApiError(409, ErrorCode.Conflict, 'busy'), { statusCode: 409, code: 'CONFLICT', message: 'busy' }],
    ['throttling', new ThrottlerException(), { statusCode: 429, code: 'RATE_LIMITED' }],
    ['unknown route', new NotFoundException('Cannot GET /x'), { statusCode: 404, code: 'NOT_FOUND', message: 'no such route' }],
    ['Nest 400', new BadRequestException('Bad'), { statusCode: 400, code: 'BAD_REQUEST' }],
    ['missing workflow', new WorkflowNotFoundError('nope', 'onboard/x', undefined), { statusCode: 404, code: 'NOT_FOUND' }],
    [
      'rejected update',
      new WorkflowUpdateFailedError('Workflow Update failed', ApplicationFailure.create({ message: 'not waiting for credentials' })),
      { statusCode: 409, code: 'CONFLICT', message: 'not waiting for credentials' },
    ],
    ['anything else', new TypeError('x is undefined'), { statusCode: 500, code: 'INTERNAL', message: 'internal error' }],
  ])('%s', (_name, exception, expected) => {
    expect(filter.toBody(exception)).toMatchObject(expected);
  });
});
