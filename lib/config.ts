import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { CodecKeys, Keyring, SecretSealer, type ApiKeys } from './keyring';

/**
 * The one configuration loader. Every process (worker, API, devstack, tests) reads the same variables;
 * invalid values stop the process at start with a message naming the variable.
 *
 * Keys are the one thing the processes do not share (docs/security.md, "Keys: who holds what"):
 * - worker (`loadWorkerConfig`): `AO_MASTER_KEYS`, a `Keyring` (payload codec + the private keys that open
 *   sealed secrets);
 * - API (`loadApiConfig`): `AO_CODEC_KEYS` and `AO_SEAL_PUBLIC_KEYS`, derived from the master keys with
 *   `npx agent-onboarding keys api-env`. The API refuses to start with `AO_MASTER_KEYS`.
 */
export interface AppConfig {
  temporal: { address: string; namespace: string; onboardingTaskQueue: string; tunnelTaskQueue: string; tls: boolean };
  influx: {
    url: string;
    token: string;
    org: string;
    bucket: string;
    /** PEM of the CA that signs an https InfluxDB's certificate (INFLUX_CA_FILE); the system's CAs otherwise. */
    ca?: string;
  };
  api: {
    host: string;
    port: number;
    tokens: Map<string, ApiRole>;
    uiOrigin: string;
    /**
     * Development only (the dev stack sets it): `/codec/dev/<secret>/decode` decodes without a token, because the
     * dev server's UI has no login to forward one. Decode only; sealed secrets stay sealed either way.
     */
    devCodecSecret?: string;
    /**
     * Express `trust proxy` (AO_API_TRUST_PROXY): false (the default) uses the socket's address as the client;
     * a hop count or the addresses/subnets of the reverse proxies let X-Forwarded-For name the client
     * (what rate limiting counts per).
     */
    trustProxy?: TrustProxy;
  };
  /** Telegraf binary the controller ships in artifact mode (air-gapped hosts). */
  telegrafArtifact?: string;
}

/** The worker: the master keys. */
export interface WorkerConfig extends AppConfig {
  keyring: Keyring;
  /**
   * The fleet-wide freshness sweep (the `host-freshness-sweep` Schedule the worker ensures at start):
   * `sweepEveryMs` 0 leaves the Schedule alone. Absent (configs built by hand in tests and benchmarks): the same.
   */
  freshness?: FreshnessConfig;
  /** Installs that start close together share one ansible-playbook run (absent: the defaults, 25 within 2 s). */
  installBatch?: InstallBatchConfig;
  /** Where fleets' inventory sources may be read from (absent: nowhere). */
  inventory?: InventoryConfig;
  /** AO_ONBOARDING_ACTIVITY_SLOTS: onboarding activities one worker runs at once (absent: 64). */
  onboardingActivitySlots?: number;
}

export interface InventoryConfig {
  /** AO_INVENTORY_DIRS: absolute directories whose files (symlinks resolved) sources may name. */
  dirs: string[];
  /** AO_INVENTORY_URLS: http(s) URL prefixes sources may name. */
  urlPrefixes: string[];
}

/**
 * AO_INVENTORY_DIRS and AO_INVENTORY_URLS, comma-separated; both empty by default (no source is readable).
 * A URL prefix matches by origin and then by path at a `/` boundary (activities/inventory/allowlist.ts), so
 * `https://cmdb.example.com/inv` does not let `https://cmdb.example.com.evil.net/` or `/inventory-admin` through.
 */
export function inventoryConfig(env: Env): InventoryConfig {
  const list = (v: string | undefined) => (v ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  const dirs = list(env.AO_INVENTORY_DIRS).map((d) => {
    // eslint-disable-next-line no-control-regex -- matching control characters is the point
    if (!d.startsWith('/') || /[\u0000-\u001f\u007f]/.test(d) || d.split('/').some((s) => s === '..' || s === '.')) {
      throw new ConfigError(`AO_INVENTORY_DIRS entries must be absolute directories without . or .. segments, got "${d.slice(0, 80)}"`);
    }
    return d.length > 1 ? d.replace(/\/+$/, '') : d;
  });
  const urlPrefixes = list(env.AO_INVENTORY_URLS).map((p) => {
    let u: URL | undefined;
    try {
      u = new URL(p);
    } catch {
      u = undefined;
    }
    // Never echo an entry that holds credentials.
    const shown = u ? `${u.protocol}//${u.host}${u.pathname}` : p.replace(/\/\/[^/@]*@/, '//…@').slice(0, 80);
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw new ConfigError(`AO_INVENTORY_URLS entries must be http(s) URLs, got "${shown}"`);
    if (u.username || u.password) throw new ConfigError(`AO_INVENTORY_URLS entries must not contain credentials (${shown})`);
    if (u.search || u.hash) throw new ConfigError(`AO_INVENTORY_URLS entries are prefixes: no query or fragment, got "${shown}…"`);
    return u.href;
  });
  return { dirs, urlPrefixes };
}

export interface InstallBatchConfig {
  /** AO_INSTALL_BATCH_MAX: hosts per run at most; 1 = every install runs alone. */
  max: number;
  /** AO_INSTALL_BATCH_WINDOW_MS: how long a batch waits for more hosts after its first. */
  windowMs: number;
}

/**
 * 25 hosts, 2 s: a fleet's hosts reach the install within seconds of each other (they probe and make cloudroot
 * together), so a 2 s wait costs one host at most 2 s and saves one Ansible start-up (~1.5 CPU-s here) per host it
 * gathers; 25 keeps one run's forks and memory modest and a failing run's blast radius small.
 */
export const INSTALL_BATCH_DEFAULTS = { max: 25, windowMs: 2000 } as const;

/**
 * Most onboarding activities wait on the network or on an ansible-playbook child (and installs share runs), so a
 * worker runs many at once; the CPU-heavy part is bounded by the batches, not by the slots.
 */
export const DEFAULT_ONBOARDING_ACTIVITY_SLOTS = 64;

function activitySlots(env: Env): number {
  const raw = env.AO_ONBOARDING_ACTIVITY_SLOTS?.trim();
  if (!raw) return DEFAULT_ONBOARDING_ACTIVITY_SLOTS;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new ConfigError(`AO_ONBOARDING_ACTIVITY_SLOTS must be an integer in 1..1000, got "${raw.slice(0, 40)}"`);
  return n;
}

/** AO_INSTALL_BATCH_MAX (1..200, default 25) and AO_INSTALL_BATCH_WINDOW_MS (0..60000, default 2000). */
export function installBatchConfig(env: Env): InstallBatchConfig {
  const raw = env.AO_INSTALL_BATCH_MAX?.trim();
  let max: number = INSTALL_BATCH_DEFAULTS.max;
  if (raw) {
    max = Number(raw);
    if (!Number.isInteger(max) || max < 1 || max > 200) throw new ConfigError(`AO_INSTALL_BATCH_MAX must be an integer in 1..200, got "${raw.slice(0, 40)}"`);
  }
  const windowMs = env.AO_INSTALL_BATCH_WINDOW_MS?.trim() ? millis(env, 'AO_INSTALL_BATCH_WINDOW_MS', INSTALL_BATCH_DEFAULTS.windowMs, { min: 0, max: 60_000, zeroAllowed: true }) : INSTALL_BATCH_DEFAULTS.windowMs;
  return { max, windowMs };
}

export interface FreshnessConfig {
  /** AO_FRESHNESS_SWEEP_MS: how often the sweep runs; 0 = this worker does not create or update the Schedule. */
  sweepEveryMs: number;
  /** AO_STALE_AFTER_MS: a host whose newest point is older than this is stale. */
  staleAfterMs: number;
}

/**
 * Telegraf's defaults in the role: 10 s interval, 10 s flush, 2 s flush jitter, so a healthy host's newest point is
 * at most ~22 s old. 90 s is about four flushes missed in a row: a tunnel reconnect or an InfluxDB restart does not
 * flip a host to stale, a stopped agent does within one sweep after that.
 */
export const FRESHNESS_DEFAULTS = { sweepEveryMs: 60_000, staleAfterMs: 90_000 } as const;

/** The API: payload-codec keys and sealing public keys; nothing that opens a sealed secret. */
export interface ApiConfig extends AppConfig {
  keys: ApiKeys;
}

export type ApiRole = 'viewer' | 'operator';

/** false, a number of proxy hops, or proxy addresses/subnets (and Express's names loopback, linklocal, uniquelocal). */
export type TrustProxy = false | number | string[];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

function str(env: Env, name: string, fallback?: string): string {
  const v = env[name]?.trim();
  if (v) return v;
  if (fallback !== undefined) return fallback;
  throw new ConfigError(`${name} is required`);
}

function port(env: Env, name: string, fallback: number): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ConfigError(`${name} must be a TCP port, got "${raw}"`);
  return n;
}

function url(env: Env, name: string, fallback: string): string {
  const v = str(env, name, fallback);
  try {
    const u = new URL(v);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
  } catch {
    throw new ConfigError(`${name} must be an http(s) URL, got "${v}"`);
  }
  return v.replace(/\/+$/, '');
}

export function parseApiTokens(spec: string): Map<string, ApiRole> {
  const tokens = new Map<string, ApiRole>();
  for (const entry of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const idx = entry.lastIndexOf(':');
    const token = entry.slice(0, idx);
    const role = entry.slice(idx + 1);
    if (idx <= 0 || (role !== 'viewer' && role !== 'operator')) {
      throw new ConfigError('AO_API_TOKENS entries must look like "<token>:viewer" or "<token>:operator"');
    }
    if (token.length < 16) throw new ConfigError('AO_API_TOKENS: tokens must be at least 16 characters');
    tokens.set(token, role);
  }
  return tokens;
}

function influxCa(env: Env): { ca?: string } {
  const file = env.INFLUX_CA_FILE?.trim();
  if (!file) return {};
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`INFLUX_CA_FILE=${file} cannot be read: ${(e as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(`INFLUX_CA_FILE=${file} holds no PEM certificate`);
  return { ca: pem };
}

const TRUST_PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

function isAddressOrSubnet(entry: string): boolean {
  if (TRUST_PROXY_NAMES.has(entry)) return true;
  const slash = entry.indexOf('/');
  const addr = slash < 0 ? entry : entry.slice(0, slash);
  const family = isIP(addr);
  if (family === 0) return false;
  if (slash < 0) return true;
  const prefix = entry.slice(slash + 1);
  if (/^\d{1,3}$/.test(prefix)) return Number(prefix) <= (family === 4 ? 32 : 128);
  // An IPv4 netmask, as Express accepts too (10.0.0.0/255.0.0.0).
  return family === 4 && isIP(prefix) === 4;
}

/**
 * AO_API_TRUST_PROXY: unset or "false" = do not trust X-Forwarded-For; "1".."32" = that many reverse proxies in
 * front of the API; or a comma list of proxy addresses/subnets ("10.0.0.0/8,fd00::/8", "loopback").
 * "true" (trust every hop) is refused: any client could then pick its own address.
 */
export function parseTrustProxy(spec: string | undefined): TrustProxy {
  const raw = spec?.trim() ?? '';
  if (raw === '' || raw === 'false' || raw === '0') return false;
  const fail = (why: string) =>
    new ConfigError(`AO_API_TRUST_PROXY ${why}; use a hop count ("1") or proxy addresses/subnets ("10.0.0.0/8,::1"), got "${raw.slice(0, 100)}"`);
  if (raw === 'true') throw fail('"true" would let any client choose its address');
  if (/^\d+$/.test(raw)) {
    const hops = Number(raw);
    if (hops > 32) throw fail('must be at most 32 hops');
    return hops;
  }
  const entries = raw.split(',').map((e) => e.trim());
  const bad = entries.filter((e) => !isAddressOrSubnet(e));
  if (bad.length > 0) throw fail(`has entries that are neither an address nor a subnet (${bad.map((b) => `"${b.slice(0, 40)}"`).join(', ')})`);
  return entries;
}

const API_KEYS_HOWTO =
  'derive them from the master keys where those are kept: `AO_MASTER_KEYS=… npx agent-onboarding keys api-env` ' +
  'prints AO_CODEC_KEYS=… and AO_SEAL_PUBLIC_KEYS=… (docs/operations.md)';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

function parseKeys<T>(name: string, spec: string | undefined, parse: (spec: string) => T, missing: string): T {
  if (!spec?.trim()) throw new ConfigError(`${name} is required (${missing})`);
  try {
    return parse(spec.trim());
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
}

const DAY_MS = 24 * 3600_000;

function millis(env: Env, name: string, fallback: number, opts: { min: number; max: number; zeroAllowed?: boolean }): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  const ok = Number.isInteger(n) && ((opts.zeroAllowed && n === 0) || (n >= opts.min && n <= opts.max));
  if (!ok) {
    const range = `${opts.min}..${opts.max}`;
    throw new ConfigError(`${name} must be milliseconds in ${opts.zeroAllowed ? `0 (off) or ${range}` : range}, got "${raw.slice(0, 40)}"`);
  }
  return n;
}

/** AO_FRESHNESS_SWEEP_MS (default 60000; 0 = off) and AO_STALE_AFTER_MS (default 90000). */
export function freshnessConfig(env: Env): FreshnessConfig {
  return {
    // Schedules run at whole seconds at the finest.
    sweepEveryMs: millis(env, 'AO_FRESHNESS_SWEEP_MS', FRESHNESS_DEFAULTS.sweepEveryMs, { min: 1000, max: DAY_MS, zeroAllowed: true }),
    staleAfterMs: millis(env, 'AO_STALE_AFTER_MS', FRESHNESS_DEFAULTS.staleAfterMs, { min: 1000, max: 7 * DAY_MS }),
  };
}

/**
 * AO_FLEET_CONCURRENCY: hosts a fleet onboards at once when its request names none. The default fits the
 * controller: installs batch into one ansible-playbook per window, so more hosts in flight than cores is fine, but
 * each in-flight host costs SSH sessions and memory on the worker.
 */
export function fleetConcurrencyDefault(env: Env, cpus: number): number {
  const raw = env.AO_FLEET_CONCURRENCY?.trim();
  if (!raw) return Math.min(64, Math.max(4, 8 * cpus));
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 500) throw new ConfigError(`AO_FLEET_CONCURRENCY must be an integer in 1..500, got "${raw.slice(0, 40)}"`);
  return n;
}

function commonConfig(env: Env): AppConfig {
  return {
    temporal: {
      address: str(env, 'TEMPORAL_ADDRESS', '127.0.0.1:7233'),
      namespace: str(env, 'TEMPORAL_NAMESPACE', 'default'),
      onboardingTaskQueue: str(env, 'AO_ONBOARDING_TASK_QUEUE', 'onboarding'),
      tunnelTaskQueue: str(env, 'AO_TUNNEL_TASK_QUEUE', 'tunnels'),
      tls: env.TEMPORAL_TLS === 'true',
    },
    influx: {
      url: url(env, 'INFLUX_URL', 'http://127.0.0.1:8086'),
      token: str(env, 'INFLUX_TOKEN', 'telegraf:telegraf'),
      org: str(env, 'INFLUX_ORG', 'agent-onboarding'),
      bucket: str(env, 'INFLUX_BUCKET', 'telegraf/autogen'),
      ...influxCa(env),
    },
    api: {
      host: str(env, 'AO_API_HOST', '127.0.0.1'),
      port: port(env, 'AO_API_PORT', 8080),
      tokens: parseApiTokens(env.AO_API_TOKENS ?? ''),
      uiOrigin: str(env, 'AO_UI_ORIGIN', 'http://127.0.0.1:8233'),
      trustProxy: parseTrustProxy(env.AO_API_TRUST_PROXY),
    },
    telegrafArtifact: env.TELEGRAF_PATH?.trim() || undefined,
  };
}

/** The worker's configuration: `AO_MASTER_KEYS` is required. */
export function loadWorkerConfig(env: Env = process.env): WorkerConfig {
  const keyring = parseKeys('AO_MASTER_KEYS', env.AO_MASTER_KEYS, Keyring.parse, 'e.g. "k1:$(openssl rand -base64 32)"');
  return { ...commonConfig(env), keyring, freshness: freshnessConfig(env), installBatch: installBatchConfig(env), inventory: inventoryConfig(env), onboardingActivitySlots: activitySlots(env) };
}

/**
 * The API's configuration: `AO_CODEC_KEYS` and `AO_SEAL_PUBLIC_KEYS`, never `AO_MASTER_KEYS` (with them a
 * compromised API could open every sealed password and key, which is exactly what sealing to workers prevents).
 */
export function loadApiConfig(env: Env = process.env): ApiConfig {
  if (env.AO_MASTER_KEYS?.trim()) {
    throw new ConfigError(
      `AO_MASTER_KEYS must not be given to the API: they open every sealed secret, and only workers may hold them. ` +
        `Give the API AO_CODEC_KEYS and AO_SEAL_PUBLIC_KEYS instead; ${API_KEYS_HOWTO}`,
    );
  }
  if (env.AO_DEV_CODEC_WITHOUT_AUTH?.trim()) {
    throw new ConfigError('AO_DEV_CODEC_WITHOUT_AUTH is no longer supported (it trusted the Origin header); the dev stack sets AO_DEV_CODEC_SECRET instead');
  }
  const codec = parseKeys('AO_CODEC_KEYS', env.AO_CODEC_KEYS, (s) => CodecKeys.parse(s), API_KEYS_HOWTO);
  const sealer = parseKeys('AO_SEAL_PUBLIC_KEYS', env.AO_SEAL_PUBLIC_KEYS, (s) => SecretSealer.parse(s), API_KEYS_HOWTO);
  if (codec.primaryId !== sealer.primary.id) {
    throw new ConfigError(
      `AO_CODEC_KEYS and AO_SEAL_PUBLIC_KEYS must start with the same key id (got "${codec.primaryId}" and "${sealer.primary.id}"); ${API_KEYS_HOWTO}`,
    );
  }
  const config: ApiConfig = { ...commonConfig(env), keys: { codec, sealer } };
  const devSecret = env.AO_DEV_CODEC_SECRET?.trim();
  if (devSecret) {
    if (!/^[A-Za-z0-9_-]{32,256}$/.test(devSecret)) throw new ConfigError('AO_DEV_CODEC_SECRET must be 32-256 characters of A-Z a-z 0-9 _ -');
    if (!LOOPBACK.has(config.api.host)) {
      throw new ConfigError(`AO_DEV_CODEC_SECRET is for the local dev stack only: the API must listen on loopback, not AO_API_HOST=${config.api.host}`);
    }
    config.api.devCodecSecret = devSecret;
  }
  return config;
}

/** The API's key variables, derived from the master keys (`npx agent-onboarding keys api-env`, the dev stack). */
export function apiKeyEnv(keyring: Keyring): { AO_CODEC_KEYS: string; AO_SEAL_PUBLIC_KEYS: string } {
  const { codec, sealer } = keyring.apiKeys();
  return { AO_CODEC_KEYS: codec.toSpec(), AO_SEAL_PUBLIC_KEYS: sealer.toSpec() };
}

/** Where a tunnel delivers for an InfluxDB URL: host, port, and TLS when the URL is https. */
export function influxTarget(url: string): { host: string; port: number; tls?: boolean } {
  const hp = influxHostPort(url);
  return new URL(url).protocol === 'https:' ? { ...hp, tls: true } : hp;
}

/** host:port of an InfluxDB URL (what the tunnel keeper connects forwarded streams to). */
export function influxHostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  const port = u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port };
}
