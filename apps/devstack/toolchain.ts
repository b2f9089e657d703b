import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';

export function cacheDir(): string {
  return process.env.AO_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'agent-onboarding');
}

export function repoRoot(): string {
  // apps/devstack → repo root, from source or from dist/apps/devstack.
  const up = path.resolve(__dirname, '..', '..');
  return path.basename(up) === 'dist' ? path.dirname(up) : up;
}

export interface Toolchain {
  temporal: string;
  influxd: string;
  telegraf: string;
}

/** Runs deploy/dev/toolchain (idempotent; seconds when cached) and returns the binaries' paths. */
export function ensureToolchain(): Toolchain {
  const out = execFileSync('bash', [path.join(repoRoot(), 'deploy', 'dev', 'toolchain'), '--print-env'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  const env = Object.fromEntries(out.trim().split('\n').map((l) => l.split('=') as [string, string]));
  return { temporal: env.TEMPORAL_CLI_PATH, influxd: env.INFLUXD_PATH, telegraf: env.TELEGRAF_PATH };
}
