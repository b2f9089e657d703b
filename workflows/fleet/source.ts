import { hasTemplateSyntax, TEMPLATE_MESSAGE, urlProblem } from '../input-rules';

/**
 * Where a fleet's hosts come from, and what a read of it returns. Plain data (it crosses Temporal payloads) and
 * pure rules, so the API, the reconcile workflow and the `readInventory` activity judge a source the same way.
 * Which paths and URLs a worker may actually read is the worker's allowlist (AO_INVENTORY_DIRS /
 * AO_INVENTORY_URLS), checked by the activity: `sourceProblem` only says whether the shape is sane.
 */
export type FleetSource =
  /** INI or YAML, read with `ansible-inventory -i <path> --list`; `group`: that group and its children only. */
  | { kind: 'ansible-inventory'; path: string; group?: string }
  /** A YAML or JSON file of hosts: `{ "hosts": [InventoryHost, …] }` or a bare array of them. */
  | { kind: 'file'; path: string }
  /** GET returning JSON in the file format. */
  | { kind: 'http'; url: string };

export type FleetSourceKind = FleetSource['kind'];

/** One host as a source lists it; credentials never come from a source (the fleet's defaults give them). */
export interface InventoryHost {
  /** `ansible_host`, else the inventory name. An IP address or a DNS name (lower case). */
  address: string;
  /** `ansible_port`. */
  port?: number;
  /** Var `ao_host_id` in Ansible; `hostId` in file/http. */
  hostId?: string;
  /** `ansible_user` / `username`. */
  username?: string;
  /** Var `ao_labels` (a dict of strings) / `labels`. */
  labels?: Record<string, string>;
  /** Var `ao_data_path` / `dataPath`. */
  dataPath?: 'direct' | 'tunnel' | 'proxy';
}

export interface InventoryRead {
  /** Valid, de-duplicated hosts in canonical order (by address, port, host id). */
  hosts: InventoryHost[];
  /** Entries left out, with why; names never carry unsafe characters. Bounded (the last entry counts the rest). */
  ignored: { name: string; why: string }[];
  readAtMs: number;
  /** sha256 (hex) of the canonical host list: equal digests, nothing changed. */
  digest: string;
}

export const DATA_PATH_KINDS: readonly NonNullable<InventoryHost['dataPath']>[] = ['direct', 'tunnel', 'proxy'];

/** Ansible group names as `ansible-inventory` keeps them (it warns about, but keeps, `-`). */
export const INVENTORY_GROUP_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/;

export const MAX_SOURCE_PATH_LENGTH = 1024;

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const PATH_CONTROL = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/u;

/**
 * `$` and `~`: Ansible expands variables and `~` in inventory paths, so the file it opens could differ from the one
 * the allowlist checked. `,`: `-i a,b` is a host list, not a path. Backticks and backslashes: never needed.
 */
const PATH_FORBIDDEN = /[$~,`\\]/;

const KEYS: Record<FleetSourceKind, readonly string[]> = {
  'ansible-inventory': ['kind', 'path', 'group'],
  file: ['kind', 'path'],
  http: ['kind', 'url'],
};

/** Why a path of a source is unusable, or null: absolute, normalized (no `.`/`..` segments), bounded, inert. */
export function sourcePathProblem(p: unknown): string | null {
  if (typeof p !== 'string' || p.length === 0 || p.length > MAX_SOURCE_PATH_LENGTH) return `path must be a string of 1 to ${MAX_SOURCE_PATH_LENGTH} characters`;
  if (!p.startsWith('/')) return 'path must be absolute';
  if (PATH_CONTROL.test(p)) return 'path must not contain control characters';
  if (p.split('/').some((seg) => seg === '..' || seg === '.')) return 'path must not contain . or .. segments';
  if (hasTemplateSyntax(p)) return `path ${TEMPLATE_MESSAGE}`;
  if (PATH_FORBIDDEN.test(p)) return 'path must not contain $, ~, commas, backticks or backslashes';
  return null;
}

/** Why `s` is not a usable FleetSource, or null. Pure; messages never quote the input. */
export function sourceProblem(s: unknown): string | null {
  if (typeof s !== 'object' || s === null || Array.isArray(s)) return 'a source object is required';
  const src = s as Record<string, unknown>;
  const kind = src.kind;
  if (kind !== 'ansible-inventory' && kind !== 'file' && kind !== 'http') return 'kind must be one of ansible-inventory, file, http';
  const unknown = Object.keys(src).filter((k) => !KEYS[kind].includes(k));
  if (unknown.length > 0) return `unknown field(s) for kind ${kind}: ${unknown.length <= 5 && unknown.every((k) => /^[A-Za-z0-9_]{1,32}$/.test(k)) ? unknown.join(', ') : `${unknown.length} field(s)`}`;
  if (kind === 'http') {
    if (typeof src.url !== 'string') return 'url must be a string';
    const problem = urlProblem(src.url);
    if (problem) return `url ${problem}`;
    // The path as the server sees it is what the allowlist prefix is about: no dot segments, plain or encoded.
    const rest = src.url.replace(/^https?:\/\/[^/?#]*/i, '');
    if (/(^|\/)(\.|%2e){1,2}(\/|$|\?|#)/i.test(rest) || /%2f|%5c|%2e/i.test(rest.split(/[?#]/)[0])) return 'url path must not contain dot segments or encoded slashes or dots';
    return null;
  }
  const pathProblem = sourcePathProblem(src.path);
  if (pathProblem) return pathProblem;
  if (kind === 'ansible-inventory' && src.group !== undefined) {
    if (typeof src.group !== 'string' || !INVENTORY_GROUP_PATTERN.test(src.group)) return `group must match ${INVENTORY_GROUP_PATTERN}`;
  }
  return null;
}
