import { apiKeyEnv } from '../../lib/config';
import { Keyring } from '../../lib/keyring';

/**
 * `keys api-env`: the API's key variables, derived from the master keys in the environment, as env-file lines
 * (systemd EnvironmentFile, `kubectl create secret generic --from-env-file`). Run it where the master keys are
 * kept; its output opens no sealed secret. The master keys are read from the environment, never from argv.
 */
export function apiEnvFile(env: Record<string, string | undefined>): string {
  const spec = env.AO_MASTER_KEYS?.trim();
  if (!spec) throw new Error('keys api-env reads the master keys from AO_MASTER_KEYS in the environment; it is not set');
  const vars = apiKeyEnv(Keyring.parse(spec));
  return Object.entries(vars)
    .map(([name, value]) => `${name}=${value}\n`)
    .join('');
}
