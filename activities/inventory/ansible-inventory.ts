import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import execa from 'execa';
import { invalidSource, inventoryUnreadable } from './failures';
import { safeName, type FieldNames, type RawHost } from './normalize';

/**
 * Reads an Ansible inventory with `ansible-inventory -i <path> --list`, so every INI/YAML quirk (ranges, `:vars`,
 * `:children`, group_vars/ and host_vars/ beside the file) is Ansible's own reading. Only static inventories:
 * script and plugin inventories run code on the controller, so the file must not be executable and only the
 * ini, yaml and toml plugins are enabled. Ansible runs with an environment and configuration of our making
 * (no ansible.cfg of the worker or the cwd, no plugins or collections from anywhere, no vault password, stdin
 * closed) and a bounded time. `--list` does not template, so `{{ … }}` arrives as text (and normalize refuses it).
 *
 * Of the host vars only the few below are read. Passwords, become passwords, key files and whatever else an
 * inventory holds stay in ansible-inventory's output, which is parsed in memory and dropped.
 */

export interface AnsibleInventoryOptions {
  timeoutMs?: number;
  /** The executable (default `ansible-inventory` on PATH, or ANSIBLE_INVENTORY_PATH). */
  bin?: string;
}

export const ANSIBLE_INVENTORY_DEFAULTS = { timeoutMs: 60_000, maxOutputBytes: 64 * 1024 * 1024 } as const;

/** The host vars a source may set, and what `ignored` reasons call each field. */
export const ANSIBLE_VARS = {
  address: 'ansible_host',
  port: 'ansible_port',
  hostId: 'ao_host_id',
  username: 'ansible_user',
  labels: 'ao_labels',
  dataPath: 'ao_data_path',
} as const;

export const ANSIBLE_FIELD_NAMES: FieldNames = { ...ANSIBLE_VARS, address: 'ansible_host (or the inventory name)' };

/** Refuses what is not a plain file: executables (a script inventory runs code) and directories. */
export async function assertStaticInventoryFile(realPath: string): Promise<void> {
  let st;
  try {
    st = await stat(realPath);
  } catch (e) {
    throw inventoryUnreadable(`inventory ${realPath} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!st.isFile()) throw invalidSource(`inventory ${realPath} must be a regular file (directories and special files are refused)`);
  if ((st.mode & 0o111) !== 0) throw invalidSource(`inventory ${realPath} is executable: script inventories run code and are refused (chmod a-x it)`);
}

/** `!unsafe` strings come out of --list as `{ "__ansible_unsafe": "…" }`: the text is what the inventory meant. */
function unwrapUnsafe(v: unknown): unknown {
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === '__ansible_unsafe') return (v as Record<string, unknown>).__ansible_unsafe;
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapUnsafe(x)]));
  }
  return v;
}

/** `!vault` values come out of --list as `{ "__ansible_vault": "…" }`, also inside a dict. */
function isVaulted(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  return '__ansible_vault' in v || Object.values(v).some(isVaulted);
}

interface ListedGroup {
  hosts?: unknown;
  children?: unknown;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/**
 * The hosts of `ansible-inventory --list` output (all of them, or those of `group` and its children, recursively),
 * in inventory order, each once. An unknown group fails the read rather than returning no hosts, so a typo never
 * looks like "every host was removed". (--list leaves out groups without hosts; a group named as someone's child
 * exists, and is then just empty.)
 */
export function hostsFromAnsibleList(list: unknown, group?: string): RawHost[] {
  if (typeof list !== 'object' || list === null || Array.isArray(list)) throw inventoryUnreadable('ansible-inventory printed no inventory');
  const doc = list as Record<string, unknown>;
  const meta = doc._meta as { hostvars?: unknown } | undefined;
  const hostvars = (typeof meta?.hostvars === 'object' && meta.hostvars !== null ? meta.hostvars : {}) as Record<string, unknown>;
  const groupOf = (name: string): ListedGroup | undefined => {
    const g = name === '_meta' ? undefined : doc[name];
    return typeof g === 'object' && g !== null && !Array.isArray(g) ? (g as ListedGroup) : undefined;
  };
  const root = group ?? 'all';
  if (!groupOf(root)) {
    const named = Object.keys(doc).some((k) => strings(groupOf(k)?.children).includes(root));
    if (!named) throw inventoryUnreadable(`group ${root} is not in the inventory`);
    return [];
  }
  const names: string[] = [];
  const seenHosts = new Set<string>();
  const seenGroups = new Set<string>();
  const add = (h: string) => {
    if (seenHosts.has(h)) return;
    seenHosts.add(h);
    names.push(h);
  };
  const visit = (g: string) => {
    if (seenGroups.has(g)) return; // Ansible refuses cycles; a diamond is visited once
    seenGroups.add(g);
    strings(groupOf(g)?.hosts).forEach(add);
    for (const child of strings(groupOf(g)?.children)) visit(child);
  };
  visit(root);
  if (group === undefined) Object.keys(hostvars).forEach(add);

  return names.map((name, i): RawHost => {
    const raw = hostvars[name];
    const vars = (typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? raw : {}) as Record<string, unknown>;
    // Only the vars we know, read by name: nothing else of the host's vars is touched.
    const v = (key: string) => unwrapUnsafe(vars[key]);
    // A vaulted value is never decrypted (no vault password reaches ansible-inventory): the host is left out.
    const vaulted = Object.values(ANSIBLE_VARS).filter((key) => isVaulted(vars[key]));
    const problem = vaulted.length > 0 ? `${vaulted.join(', ')} vault-encrypted (inventory sources are read without a vault password)` : undefined;
    return {
      ...(problem ? { problem } : {}),
      name: safeName(name) ?? `host #${i + 1} (name not shown: unsafe characters)`,
      address: v(ANSIBLE_VARS.address) ?? name,
      port: v(ANSIBLE_VARS.port),
      hostId: v(ANSIBLE_VARS.hostId),
      username: v(ANSIBLE_VARS.username),
      labels: v(ANSIBLE_VARS.labels),
      dataPath: v(ANSIBLE_VARS.dataPath),
    };
  });
}

/**
 * What went wrong, in Ansible's words but without its quotes of the inventory (an INI error quotes the whole line,
 * passwords included): which plugins failed, at which line, and the first line of the ERROR.
 */
export function describeAnsibleError(stderr: string): string {
  const flat = stderr.replace(/\s*\n\s*/g, ' ');
  const plugins = [...flat.matchAll(/Failed to parse (\S+) with (\w+) plugin:\s*(?:\1:(\d+):)?/g)].map((m) => (m[3] ? `${m[2]} plugin: line ${m[3]}` : `${m[2]} plugin`));
  const error = /ERROR! ([^\n]*)/.exec(stderr)?.[1] ?? '';
  const unquoted = error
    .replace(/'[^']*'|"[^"]*"/g, "'…'")
    .replace(/\b(\w*(?:pass|secret|token|key|vault)\w*)\s*[=:]\s*\S+/gi, '$1=[redacted]')
    .slice(0, 300);
  return [unquoted, plugins.length ? `(${[...new Set(plugins)].join('; ')})` : ''].filter(Boolean).join(' ') || 'no error message';
}

/** Runs `ansible-inventory --list` on a file the allowlist resolved; returns its parsed JSON. */
export async function listAnsibleInventory(realPath: string, opts: AnsibleInventoryOptions = {}): Promise<unknown> {
  await assertStaticInventoryFile(realPath);
  const timeoutMs = opts.timeoutMs ?? ANSIBLE_INVENTORY_DEFAULTS.timeoutMs;
  const bin = opts.bin ?? (process.env.ANSIBLE_INVENTORY_PATH?.trim() || 'ansible-inventory');
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'ao-inventory-'));
  try {
    const none = path.join(tmp, 'none');
    await mkdir(none);
    // An empty configuration: neither the worker's nor one in a cwd or HOME that someone else wrote.
    await writeFile(path.join(tmp, 'ansible.cfg'), '[defaults]\n');
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      HOME: tmp,
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      ANSIBLE_CONFIG: path.join(tmp, 'ansible.cfg'),
      // Static formats only: no script, auto or other plugin inventories (they run code).
      ANSIBLE_INVENTORY_ENABLED: 'ini,yaml,toml',
      ANSIBLE_INVENTORY_UNPARSED_FAILED: 'True',
      ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED: 'True',
      ANSIBLE_INVENTORY_CACHE: 'False',
      // No plugin code from anywhere but ansible-core itself; group_vars/host_vars files still apply.
      ANSIBLE_INVENTORY_PLUGINS: none,
      ANSIBLE_VARS_PLUGINS: none,
      ANSIBLE_VARS_ENABLED: 'host_group_vars',
      ANSIBLE_COLLECTIONS_PATH: none,
      ANSIBLE_COLLECTIONS_SCAN_SYS_PATH: 'False',
      // Never a vault prompt (stdin is closed too): vaulted values stay opaque, vaulted files fail the read.
      ANSIBLE_ASK_VAULT_PASS: 'False',
      ANSIBLE_HOME: path.join(tmp, 'home'),
      ANSIBLE_LOCAL_TEMP: path.join(tmp, 'local'),
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_DEPRECATION_WARNINGS: 'False',
      PYTHONDONTWRITEBYTECODE: '1',
      PYTHONNOUSERSITE: '1',
    };
    const res = await execa(bin, ['-i', realPath, '--list'], {
      cwd: tmp,
      env,
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: ANSIBLE_INVENTORY_DEFAULTS.maxOutputBytes,
    });
    if (res.timedOut) throw inventoryUnreadable(`ansible-inventory did not finish reading ${realPath} within ${timeoutMs} ms`, { retryable: true });
    if ((res as { code?: string }).code === 'ENOENT') throw inventoryUnreadable(`${bin} is not installed on this worker`);
    if (/maxBuffer/i.test((res as { message?: string }).message ?? '')) {
      throw inventoryUnreadable(`ansible-inventory printed more than ${ANSIBLE_INVENTORY_DEFAULTS.maxOutputBytes} bytes for ${realPath}`);
    }
    if (res.exitCode !== 0) throw inventoryUnreadable(`ansible-inventory could not read ${realPath}: ${describeAnsibleError(res.stderr ?? '')}`);
    try {
      return JSON.parse(res.stdout);
    } catch {
      throw inventoryUnreadable(`ansible-inventory printed something other than JSON for ${realPath}`);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** The hosts of an Ansible inventory file, or of one group of it. */
export async function readAnsibleInventory(realPath: string, group: string | undefined, opts: AnsibleInventoryOptions = {}): Promise<RawHost[]> {
  return hostsFromAnsibleList(await listAnsibleInventory(realPath, opts), group);
}
