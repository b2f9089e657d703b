import { ValidationPipe } from '@nestjs/common';
import type { ValidationError } from 'class-validator';
import { validationFailed, type FieldError } from './api-error';

/** Field names can come from the request (unknown properties): never echo more than a short, printable prefix. */
export function printableFieldName(name: string): string {
  const clean = name.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 64)}…` : clean;
}

/** Flattens class-validator's tree into `[{ field: 'bastion.privateKey', constraints }]`. */
export function flattenValidationErrors(errors: ValidationError[], parent = ''): FieldError[] {
  const out: FieldError[] = [];
  for (const error of errors) {
    const name = error.property === undefined || error.property === '' ? '' : printableFieldName(String(error.property));
    const field = parent && name ? `${parent}.${name}` : parent || name || '(body)';
    if (error.constraints && Object.keys(error.constraints).length > 0) {
      const constraints: Record<string, string> = {};
      for (const [k, v] of Object.entries(error.constraints)) constraints[k] = printableMessage(v, error.property);
      out.push({ field, constraints });
    }
    if (error.children?.length) out.push(...flattenValidationErrors(error.children, field === '(body)' ? '' : field));
  }
  return out;
}

/** Messages name the property; a forbidden unknown property's name is request input, so shorten it too. */
function printableMessage(message: string, property: string | undefined): string {
  if (!property) return message;
  return message.split(property).join(printableFieldName(String(property)));
}

export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    forbidUnknownValues: true,
    // Values and targets would echo secrets (passwords, keys) back to the caller.
    validationError: { target: false, value: false },
    exceptionFactory: (errors) => validationFailed(flattenValidationErrors(errors)),
  });
}
