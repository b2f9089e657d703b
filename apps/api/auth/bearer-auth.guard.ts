import { CanActivate, ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { ApiConfig, ApiRole } from '../../../lib/config';
import { ApiError } from '../common/api-error';
import { ErrorCode } from '../common/error-codes';
import type { HttpRequest } from '../common/http-types';
import { APP_CONFIG } from '../temporal/temporal.module';
import { DEV_CODEC_CAPABILITY, PUBLIC_ROUTE, REQUIRED_ROLE } from './roles.decorator';
import { TokenMatcher } from './token-matcher';

const RANK: Record<ApiRole, number> = { viewer: 1, operator: 2 };

@Injectable()
export class BearerAuthGuard implements CanActivate {
  private readonly matcher: TokenMatcher;
  /** The dev stack's codec capability, compared like a token (constant time); absent outside the dev stack. */
  private readonly devCodec?: TokenMatcher;

  constructor(
    private readonly reflector: Reflector,
    @Inject(APP_CONFIG) config: ApiConfig,
  ) {
    this.matcher = new TokenMatcher(config.api.tokens);
    const secret = config.api.devCodecSecret;
    if (secret) this.devCodec = new TokenMatcher(new Map([[secret, 'viewer']]));
  }

  canActivate(context: ExecutionContext): boolean {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) return true;
    const req = context.switchToHttp().getRequest<HttpRequest>();
    if (this.reflector.getAllAndOverride<boolean>(DEV_CODEC_CAPABILITY, targets)) {
      // The dev server's UI has no login to forward a token; its codec URL carries a secret instead.
      const given = req.params?.capability ?? '';
      if (this.devCodec?.roleOf(given) !== 'viewer') throw new ApiError(401, ErrorCode.Unauthenticated, 'invalid codec capability');
      req.apiRole = 'viewer';
      return true;
    }
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer +([^\s]+) *$/i.exec(header) : null;
    if (!match) throw new ApiError(401, ErrorCode.Unauthenticated, 'a bearer token is required');
    const role = this.matcher.roleOf(match[1]);
    if (!role) throw new ApiError(401, ErrorCode.Unauthenticated, 'invalid bearer token');
    const required =
      this.reflector.getAllAndOverride<ApiRole>(REQUIRED_ROLE, targets) ??
      (req.method === 'GET' || req.method === 'HEAD' ? 'viewer' : 'operator');
    if (RANK[role] < RANK[required]) throw new ApiError(403, ErrorCode.Forbidden, `this needs the ${required} role`);
    req.apiRole = role;
    return true;
  }
}
