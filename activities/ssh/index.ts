import type { ActivityDeps } from '../deps';
import { whileHeartbeating } from '../heartbeat';
import { checkAgent } from './check-agent';
import { createCloudroot } from './cloudroot';
import { authorizeForwardKey, revokeForwardKey } from './forward-key';
import { probeHost } from './probe';
import { removeCloudroot } from './remove-cloudroot';
import { addCloudrootKey, retireCloudrootKeys } from './rotate-cloudroot-key';

export { dialSsh, openJumpListener, scanHostKey, fingerprintSha256, normalizeFingerprint } from './dialer';
export type { SshSession, DialOptions, ExecResult, JumpListener } from './dialer';
export { shellQuote } from './shell';
export type { AuthorizeForwardKeyInput, RevokeForwardKeyInput } from './forward-key';
export type { RemoveCloudrootInput } from './remove-cloudroot';

/**
 * Every SSH activity heartbeats while it runs (every 2 s), so its heartbeat timeout (10 s in the workflows) notices
 * a dead worker and the step resumes elsewhere within seconds instead of at its start-to-close timeout (minutes).
 */
function heartbeating<A extends unknown[], R>(name: string, fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return (...args: A) => whileHeartbeating(fn(...args), { activity: name });
}

/** The SSH activities, registered by name on the worker. */
export function createSshActivities(deps: ActivityDeps) {
  return {
    probeHost: heartbeating('probeHost', probeHost(deps)),
    createCloudroot: heartbeating('createCloudroot', createCloudroot(deps)),
    authorizeForwardKey: heartbeating('authorizeForwardKey', authorizeForwardKey(deps)),
    revokeForwardKey: heartbeating('revokeForwardKey', revokeForwardKey(deps)),
    removeCloudroot: heartbeating('removeCloudroot', removeCloudroot(deps)),
    checkAgent: checkAgent(deps),
    addCloudrootKey: addCloudrootKey(deps),
    retireCloudrootKeys: retireCloudrootKeys(deps),
  };
}
