/** Stable error codes: clients branch on these, never on messages. */
export const ErrorCode = {
  ValidationFailed: 'VALIDATION_FAILED',
  MalformedJson: 'MALFORMED_JSON',
  PayloadTooLarge: 'PAYLOAD_TOO_LARGE',
  UnsupportedMediaType: 'UNSUPPORTED_MEDIA_TYPE',
  Unauthenticated: 'UNAUTHENTICATED',
  Forbidden: 'FORBIDDEN',
  NotFound: 'NOT_FOUND',
  HostNotFound: 'HOST_NOT_FOUND',
  TunnelNotFound: 'TUNNEL_NOT_FOUND',
  FleetNotFound: 'FLEET_NOT_FOUND',
  InventoryUnreadable: 'INVENTORY_UNREADABLE',
  MethodNotAllowed: 'METHOD_NOT_ALLOWED',
  Conflict: 'CONFLICT',
  RateLimited: 'RATE_LIMITED',
  CodecFailed: 'CODEC_FAILED',
  TemporalUnavailable: 'TEMPORAL_UNAVAILABLE',
  TemporalTimeout: 'TEMPORAL_TIMEOUT',
  TemporalError: 'TEMPORAL_ERROR',
  BadRequest: 'BAD_REQUEST',
  Internal: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Fallback code for an HTTP status when nothing more specific is known. */
export function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400: return ErrorCode.BadRequest;
    case 401: return ErrorCode.Unauthenticated;
    case 403: return ErrorCode.Forbidden;
    case 404: return ErrorCode.NotFound;
    case 405: return ErrorCode.MethodNotAllowed;
    case 409: return ErrorCode.Conflict;
    case 413: return ErrorCode.PayloadTooLarge;
    case 415: return ErrorCode.UnsupportedMediaType;
    case 429: return ErrorCode.RateLimited;
    case 503: return ErrorCode.TemporalUnavailable;
    case 504: return ErrorCode.TemporalTimeout;
    default: return status >= 500 ? ErrorCode.Internal : ErrorCode.BadRequest;
  }
}
