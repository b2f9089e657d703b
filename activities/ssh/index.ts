import type { ActivityDeps } from '../deps';
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

/** The SSH activities, registered by name on the worker. */
export function createSshActivities(deps: ActivityDeps) {
  return {
    probeHost: probeHost(deps),
    createCloudroot: createCloudroot(deps),
    authorizeForwardKey: authorizeForwardKey(deps),
    revokeForwardKey: revokeForwardKey(deps),
    removeCloudroot: removeCloudroot(deps),
    checkAgent: checkAgent(deps),
    addCloudrootKey: addCloudrootKey(deps),
    retireCloudrootKeys: retireCloudrootKeys(deps),
  };
}
