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
