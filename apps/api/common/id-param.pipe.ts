import { ArgumentMetadata, Injectable, PipeTransform } from '@nestjs/common';
import { validationFailed } from './api-error';
import { HOST_ID_PATTERN } from './validators';

/** Host and tunnel ids share the host-id alphabet; anything else is a 400, not a lookup. */
@Injectable()
export class ParseIdPipe implements PipeTransform<unknown, string> {
  transform(value: unknown, metadata: ArgumentMetadata): string {
    if (typeof value === 'string' && HOST_ID_PATTERN.test(value)) return value;
    const field = metadata.data ?? 'id';
    throw validationFailed([{ field, constraints: { matches: `${field} must match ${HOST_ID_PATTERN}` } }]);
  }
}
