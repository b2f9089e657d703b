import { CanActivate, ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { ApiConfig, ApiRole } from '../../../lib/config';
import { ApiError } from '../common/api-error';
import { ErrorCode } from '../common/error-codes';
import type { HttpRequest } from '../common/http-types';
import { APP_CONFIG } from '../temporal/temporal.module';
import { PUBLIC_ROUTE, REQUIRED_ROLE } from './roles.decorator';
import { TokenMatcher } from './token-matcher';

const RANK: Record<ApiRole, number> = { viewer: 1, operator: 2 };

@Injectable()
export class BearerAuthGuard implements CanActivate {
  private readonly matcher: TokenMatcher;

  constructor(
    private readonly reflector: Reflector,
    @Inject(APP_CONFIG) private readonly config: ApiConfig,
  ) {
    this.matcher = new TokenMatcher(config.api.tokens);
  }

  /** The dev stack's UI has no login to forward a token: decode (only) is open to that one origin there. */
  private isDevUiDecode(req: HttpRequest): boolean {
    const api = this.config.api;
    return !!api.devCodecWithoutAuth && req.method === 'POST' && (req.url ?? '').split('?')[0] === '/codec/decode' && req.headers.origin === api.uiOrigin;
  }

  canActivate(context: ExecutionContext): boolean {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) return true;
    const req = context.switchToHttp().getRequest<HttpRequest>();
    const header = req.headers.authorization;
    if (!header && this.isDevUiDecode(req)) {
      req.apiRole = 'viewer';
      return true;
    }
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
