import type { RequestHandler } from '../common/http-types';
import { sendError } from '../common/api-exception.filter';
import { ErrorCode } from '../common/error-codes';

const ALLOWED_HEADERS = 'X-Namespace, Authorization, Content-Type';

/**
 * CORS for the Temporal UI's origin only, and only on /codec. Preflights are answered here, before auth:
 * browsers never send credentials on a preflight.
 */
export function codecCors(uiOrigin: string): RequestHandler {
  return (req, res, next) => {
    const origin = req.headers.origin;
    res.setHeader('Vary', 'Origin');
    if (origin === uiOrigin) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    }
    if (req.method !== 'OPTIONS') return next();
    if (origin !== uiOrigin) {
      return sendError(res, { statusCode: 403, code: ErrorCode.Forbidden, message: 'origin not allowed' });
    }
    res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
    res.setHeader('Access-Control-Allow-Headers', ALLOWED_HEADERS);
    res.setHeader('Access-Control-Max-Age', '600');
    res.statusCode = 204;
    res.end();
  };
}
