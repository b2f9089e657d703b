import type { HttpRequest as Request, HttpResponse as Response, NextFunction, RequestHandler } from './http-types';
import type { INestApplication } from '@nestjs/common';
import { sendError } from './api-exception.filter';
import { ErrorCode } from './error-codes';
import { printableFieldName } from './validation';

/**
 * Express comes with @nestjs/platform-express; resolve it from there so we use the very copy Nest runs on
 * (it is not a direct dependency of ours).
 */
const express = require(require.resolve('express', { paths: [require.resolve('@nestjs/platform-express')] })) as {
  json(options: { limit: string | number; strict: boolean; type: (req: Request) => boolean }): RequestHandler;
};

const JSON_TYPE = /^application\/([\w.+-]*\+)?json\s*(;|$)/i;

export interface BodyLimits {
  /** Everything but the codec server: host requests carry at most a private key or two. */
  api: string | number;
  /** The Temporal UI sends whole payloads (up to Temporal's blob size limit) to /codec. */
  codec: string | number;
  /** A fleet lists up to 5,000 hosts (a private key or two in its defaults). */
  fleets: string | number;
}

function hasBody(req: Request): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

/**
 * Our own JSON parsing instead of Nest's: Nest turns parse errors into a 400 whose message is V8's
 * SyntaxError text, which quotes the body (a private key, say). Here the messages are fixed.
 */
export function installBodyParsing(app: INestApplication, limits: BodyLimits): void {
  const isJson = (req: Request) => JSON_TYPE.test(req.headers['content-type'] ?? '');
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (hasBody(req) && !isJson(req) && req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'OPTIONS') {
      return sendError(res, { statusCode: 415, code: ErrorCode.UnsupportedMediaType, message: 'request bodies must be application/json' });
    }
    next();
  });
  // body-parser skips a request whose body is already parsed, so the first matching parser wins.
  app.use('/codec', express.json({ limit: limits.codec, strict: true, type: isJson }));
  app.use('/v1/fleets', express.json({ limit: limits.fleets, strict: true, type: isJson }));
  app.use(express.json({ limit: limits.api, strict: true, type: isJson }));
  app.use(bodyParseErrorHandler);
  app.use(rejectPrototypeKeys);
}

/**
 * JSON.parse keeps "__proto__" as an own key; class-transformer would then set a prototype instead of
 * reporting an unknown property. Refuse such bodies outright.
 */
export function findPrototypeKey(value: unknown, path = '', depth = 0): string | undefined {
  if (typeof value !== 'object' || value === null || depth > 32) return undefined;
  for (const k of Object.keys(value)) {
    const here = path ? `${path}.${k}` : k;
    if (k === '__proto__') return here;
    const found = findPrototypeKey((value as Record<string, unknown>)[k], here, depth + 1);
    if (found) return found;
  }
  return undefined;
}

function rejectPrototypeKeys(req: Request, res: Response, next: NextFunction): void {
  const found = findPrototypeKey(req.body);
  if (!found) return next();
  const field = printableFieldName(found);
  sendError(res, {
    statusCode: 400,
    code: ErrorCode.ValidationFailed,
    message: `invalid request: ${field}`,
    errors: [{ field, constraints: { forbiddenKey: '__proto__ is not an allowed property name' } }],
  });
}

type BodyParserError = Error & { type?: string; status?: number };

export function bodyParseErrorHandler(err: BodyParserError, _req: Request, res: Response, next: NextFunction): void {
  switch (err?.type) {
    case 'entity.parse.failed':
      return sendError(res, { statusCode: 400, code: ErrorCode.MalformedJson, message: 'request body is not valid JSON' });
    case 'entity.too.large':
      return sendError(res, { statusCode: 413, code: ErrorCode.PayloadTooLarge, message: 'request body is too large' });
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return sendError(res, { statusCode: 415, code: ErrorCode.UnsupportedMediaType, message: 'unsupported body encoding or charset' });
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return sendError(res, { statusCode: 400, code: ErrorCode.BadRequest, message: 'request body could not be read' });
    default:
      return next(err);
  }
}
