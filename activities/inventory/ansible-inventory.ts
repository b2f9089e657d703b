import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import execa from 'execa';
import { inventoryUnreadable, invalidSource } from './failures';
import { safeName, type RawHost } from './normalize';

/**
 * An Ansible inventory (INI or YAML) as `ansible-inventory -i <path> --list` reads it, with only the inventory
 * plugins that parse files enabled: a script or a plugin inventory would run code on the controller, so an
 * executable file or a directory is refused, and `ANSIBLE_INVENTORY_ENABLED` names the parsers. Vault prompts are
 * impossible (no tty, no vault password file). Of each host only the connection fields and our `ao_*` vars are read;
 * passwords and key files in the inventory are never looked at.
 */

const TIMEOUT_MS = 60_000;
const MAX_OUTPUT = 64 * 1024 * 1024;

interface ListedInventory {
  _meta?: { hostvars?: Record<string, Record<string, unknown>> };
  [group: string]: unknown;
}

export async function readAnsibleInventory(file: string, group?: string): Promise<RawHost[]> {
  const st = await stat(file).catch(() => undefined);
  if (!st) throw inventoryUnreadable(`${file}: no such inventory file`);
  if (!st.isFile()) throw invalidSource(`${file}: an inventory source must be a file (a directory may hold scripts)`);
  if ((st.mode & 0o111) !== 0) throw invalidSource(`${file}: the inventory is executable; scripts and plugins are not read (they would run on the controller)`);
  const home = await mkdtemp(path.join(os.tmpdir(), 'ao-inventory-'));
  try {
    // An empty configuration of its own (and a cwd without one): nothing on this machine changes how it reads.
    const cfg = path.join(home, 'ansible.cfg');
    await writeFile(cfg, '[defaults]\n');
    const res = await execa('ansible-inventory', ['-i', file, '--list'], {
      cwd: home,
      extendEnv: false,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: home,
        LANG: 'C.UTF-8',
        ANSIBLE_CONFIG: cfg,
        ANSIBLE_HOME: path.join(home, 'ansible'),
        ANSIBLE_LOCAL_TEMP: path.join(home, 'tmp'),
        ANSIBLE_INVENTORY_ENABLED: 'ini,yaml,toml',
        ANSIBLE_INVENTORY_UNPARSED_FAILED: 'True',
        ANSIBLE_NOCOLOR: '1',
        ANSIBLE_DEPRECATION_WARNINGS: 'False',
        PYTHONDONTWRITEBYTECODE: '1',
      },
      stdin: 'ignore',
      reject: false,
      timeout: TIMEOUT_MS,
      maxBuffer: MAX_OUTPUT,
    });
    if (res.timedOut) throw inventoryUnreadable(`${file}: ansible-inventory took longer than ${TIMEOUT_MS / 1000} s`, { retryable: true });
    if (res.exitCode !== 0) {
      // Its own words about the file (never the file's content: ansible-inventory does not echo values).
      const why = (res.stderr ?? '').split('\n').map((l) => l.trim()).filter((l) => l && !/^\[WARNING\]/.test(l)).slice(-2).join(' ').slice(0, 300);
      throw inventoryUnreadable(`${file}: ansible-inventory failed (exit ${res.exitCode})${why ? `: ${why}` : ''}`);
    }
    let listed: ListedInventory;
    try {
      listed = JSON.parse(res.stdout) as ListedInventory;
    } catch {
      throw inventoryUnreadable(`${file}: ansible-inventory did not print JSON`);
    }
    return hostsOf(listed, group).map(([name, vars]) => toRaw(name, vars));
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** The hosts of `group` and its children (every host without a group), with their vars. */
export function hostsOf(listed: ListedInventory, group?: string): [string, Record<string, unknown>][] {
  const hostvars = listed._meta?.hostvars ?? {};
  const groupOf = (g: string) => (listed[g] && typeof listed[g] === 'object' ? (listed[g] as { hosts?: unknown; children?: unknown }) : undefined);
  const names = new Set<string>();
  const seen = new Set<string>();
  const walk = (g: string) => {
    if (seen.has(g)) return;
    seen.add(g);
    const node = groupOf(g);
    if (!node) return;
    if (Array.isArray(node.hosts)) for (const h of node.hosts) if (typeof h === 'string') names.add(h);
    if (Array.isArray(node.children)) for (const c of node.children) if (typeof c === 'string') walk(c);
  };
  walk(group ?? 'all');
  if (!group) for (const h of Object.keys(hostvars)) names.add(h);
  return [...names].sort().map((n) => [n, hostvars[n] ?? {}]);
}

function toRaw(name: string, vars: Record<string, unknown>): RawHost {
  return {
    name: safeName(name) ?? '(a host whose name cannot be shown)',
    address: vars.ansible_host ?? name,
    ...(vars.ansible_port !== undefined ? { port: vars.ansible_port } : {}),
    ...(vars.ao_host_id !== undefined ? { hostId: vars.ao_host_id } : {}),
    ...(vars.ansible_user !== undefined ? { username: vars.ansible_user } : {}),
    ...(vars.ao_labels !== undefined ? { labels: vars.ao_labels } : {}),
    ...(vars.ao_data_path !== undefined ? { dataPath: vars.ao_data_path } : {}),
  };
}
