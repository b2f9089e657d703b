import { SetMetadata } from '@nestjs/common';
import type { ApiRole } from '../../../lib/config';

export const REQUIRED_ROLE = 'agent-onboarding:required-role';
export const PUBLIC_ROUTE = 'agent-onboarding:public';

/**
 * The role a route needs. Without it: GET/HEAD need `viewer`, everything else `operator`
 * (so a new mutating route is operator-only unless someone decides otherwise).
 */
export const RequireRole = (role: ApiRole) => SetMetadata(REQUIRED_ROLE, role);

/** No token needed (health probes). */
export const Public = () => SetMetadata(PUBLIC_ROUTE, true);

/**
 * No token, but the route's `:capability` parameter must equal the configured dev codec secret
 * (the dev stack's `/codec/dev/<secret>/decode`). It grants the viewer role.
 */
export const DEV_CODEC_CAPABILITY = 'agent-onboarding:dev-codec-capability';
export const DevCodecCapability = () => SetMetadata(DEV_CODEC_CAPABILITY, true);
