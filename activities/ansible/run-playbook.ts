import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import execa from 'execa';
import type { Logger } from '../../lib/logging';
import { currentActivity } from '../heartbeat';
import { RUN_DIR_PREFIX, RUN_MARKER_ENV, writeRunOwner } from './playbook-runs';
import { parseRecap, shorten, type HostRecap, type PlaybookRecap } from './recap';
import { toUnsafeYaml } from './unsafe-yaml';

/**
 * Runs ansible-playbook against one host with everything the run needs in a private temp dir (0700):
 * the private key (0600, the only place it is ever plaintext on disk), a known_hosts file holding the pinned
 * host key, the inventory and the extra-vars file (0600, carries the output token). Only paths and
 * non-secret flags go on the command line, and the child gets a minimal environment (not the worker's,
 * which holds INFLUX_TOKEN and the master keys). The dir is removed whatever happens; if the worker dies
 * first, its owner record lets the next sweep (playbook-runs.ts) kill the orphaned run and remove it.
 *
 * The inventory and the extra vars are YAML with every string tagged `!unsafe` (unsafe-yaml.ts): Ansible
 * never evaluates `{{ … }}` / `{% … %}` in anything we pass, whoever wrote it.
 */

/** deploy/ansible, found from this file both as ts (activities/ansible) and compiled (dist/activities/ansible). */
export function deployDir(): string {
  const override = process.env.AO_ANSIBLE_DIR?.trim();
  if (override) return override;
  for (const up of ['../..', '../../..']) {
    const candidate = path.resolve(__dirname, up, 'deploy/ansible');
    if (existsSync(path.join(candidate, 'ansible.cfg'))) return candidate;
  }
  throw new Error(`deploy/ansible not found near ${__dirname} (set AO_ANSIBLE_DIR)`);
}

export interface PlaybookHost {
  /** Inventory name; appears in the recap. Letters, digits, `_` and `-` (Ansible expands `[a:b]` in names). */
  name: string;
  address: string;
  port: number;
  user: string;
  /** Private key text (OpenSSH or PEM, unencrypted). Written to a 0600 file for the run only. */
  privateKey: string;
  /** The pinned host key as `<algorithm> <base64>`; OpenSSH accepts no other. */
  hostPublicKey: string;
  /**
   * This host's own role variables (a batch: host id, labels, output URL …), as inventory host vars. Extra vars win
   * over host vars in Ansible, so what differs per host must be here, never in `extraVars`.
   */
  vars?: Record<string, unknown>;
}

export interface RunPlaybookOptions {
  /** One host, or `hosts`: a batch that shares one `ansible-playbook -f N` run (each with its own key and pin). */
  host?: PlaybookHost;
  hosts?: PlaybookHost[];
  /** Written to a 0600 file and passed as `-e @file`: the only way secrets reach Ansible. */
  extraVars: Record<string, unknown>;
  playbook?: string;
  /** Values that must never appear in anything we return or log (scrubbed from stderr tails). */
  secrets?: ReadonlyArray<string | undefined>;
  timeoutMs?: number;
  heartbeatIntervalMs?: number;
  /** Aborts the run (the process group is killed). Inside an activity the activity's cancellation does too. */
  signal?: AbortSignal;
  log?: Logger;
  /** Called with the child's pid once started (tests watch /proc with it). */
  onSpawn?: (pid: number) => void;
  /**
   * Not tied to the calling activity (a batch serves several): no heartbeats from here and the caller's cancellation
   * does not stop the run; `signal` still does. Each member heartbeats for itself.
   */
  detached?: boolean;
  /**
   * Called as soon as a host has run the role's last task (the recap callback prints a line for it): with the free
   * strategy of a batch, long before the slowest host is done.
   */
  onHostDone?: (name: string, done: { counts: HostRecap; custom: Record<string, unknown> }) => void;
  /** Ansible's strategy: `linear` (default, tasks in lockstep) or `free` (each host at its own pace). */
  strategy?: 'linear' | 'free';
}

export interface PlaybookRun {
  exitCode: number | null;
  recap: PlaybookRecap | null;
  /** Last lines of stderr, scrubbed and bounded: for errors when there is no recap. */
  stderrTail: string;
  timedOut: boolean;
  cancelled: boolean;
  durationMs: number;
}

const INVENTORY_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** The inventory alias OpenSSH looks the host key up under; the same whether we connect directly or via a local forward. */
export const HOST_KEY_ALIAS = 'ao-target';

export class PlaybookError extends Error {
  override name = 'PlaybookError';
}

function scrub(text: string, secrets: ReadonlyArray<string | undefined>): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join('[redacted]');
  return out;
}

function stderrTail(stderr: string, secrets: ReadonlyArray<string | undefined>): string {
  // Deprecation chatter is noise; the last real lines name the problem.
  const lines = scrub(stderr, secrets)
    .split('\n')
    .filter((l) => l.trim() && !/DEPRECATION WARNING|deprecation_warnings|^\s{1,}[a-z]/i.test(l));
  return shorten(lines.slice(-6).join(' | '), 500);
}

/** The alias OpenSSH looks a host's pinned key up under: `ao-target` for the one host of a single run. */
function hostKeyAlias(name: string): string {
  return `ao-${name}`;
}

function knownHostsLine(publicKey: string, alias: string): string {
  const parts = publicKey.trim().split(/\s+/);
  if (parts.length < 2 || !/^[a-z0-9@.-]+$/i.test(parts[0]) || !/^[A-Za-z0-9+/=]+$/.test(parts[1])) {
    throw new PlaybookError('the host public key must look like "<algorithm> <base64>"');
  }
  return `${alias} ${parts[0]} ${parts[1]}\n`;
}

function sshCommonArgs(knownHosts: string, alias: string): string {
  return [
    // Nothing from ~/.ssh/config or /etc/ssh/ssh_config: this run's options are all there is.
    '-F /dev/null',
    `-o UserKnownHostsFile=${knownHosts}`,
    '-o GlobalKnownHostsFile=/dev/null',
    `-o HostKeyAlias=${alias}`,
    '-o StrictHostKeyChecking=yes',
    '-o CheckHostIP=no',
  ].join(' ');
}

/** Ends the ControlPersist masters of this run (they outlive ansible-playbook otherwise). */
async function closeControlMasters(cpDir: string): Promise<void> {
  let sockets: string[] = [];
  try {
    sockets = await readdir(cpDir);
  } catch {
    return;
  }
  await Promise.all(
    sockets.map((s) =>
      execa('ssh', ['-o', `ControlPath=${path.join(cpDir, s)}`, '-O', 'exit', 'ao-control'], {
        reject: false,
        timeout: 5_000,
        extendEnv: false,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      }),
    ),
  );
}

/** CPU niceness of ansible-playbook runs (0 normal, 19 lowest). */
const PLAYBOOK_NICENESS = 10;

/** Waits (bounded) until no process of the group is left; a killed process lingers until it is reaped. */
async function groupGone(pgid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Lives in activities/heartbeat.ts (the SSH activities heartbeat too); re-exported for existing callers. */
export { whileHeartbeating } from '../heartbeat';

export async function runPlaybook(opts: RunPlaybookOptions): Promise<PlaybookRun> {
  const dir = deployDir();
  const playbook = path.join(dir, opts.playbook ?? 'onboard.yml');
  const hosts = opts.hosts ?? (opts.host ? [opts.host] : []);
  if (hosts.length === 0) throw new PlaybookError('a run needs at least one host');
  const secrets = [...(opts.secrets ?? []), ...hosts.map((h) => h.privateKey)];
  for (const h of hosts) if (!INVENTORY_NAME.test(h.name)) throw new PlaybookError(`the inventory name must match ${INVENTORY_NAME}`);
  if (new Set(hosts.map((h) => h.name)).size !== hosts.length) throw new PlaybookError('inventory names must be unique within a run');
  const ctx = opts.detached ? undefined : currentActivity();
  const started = Date.now();
  ctx?.heartbeat({ step: 'ansible-playbook', elapsedMs: 0 });
  const tmp = await mkdtemp(path.join(os.tmpdir(), RUN_DIR_PREFIX));
  try {
    await chmod(tmp, 0o700);
    // Before the key is on disk: a worker dying from here on leaves a dir the sweep can attribute.
    await writeRunOwner(tmp, null);
    const inventory = path.join(tmp, 'inventory.yml');
    const varsFile = path.join(tmp, 'vars.yml');
    const cpDir = path.join(tmp, 'cp');
    const localTmp = path.join(tmp, 'local');
    await writeFile(varsFile, toUnsafeYaml(opts.extraVars), { mode: 0o600 });
    // Each host its own key file and known_hosts (its pin under its own alias): no host can pass for another.
    const inventoryHosts: Record<string, Record<string, unknown>> = {};
    for (const [i, h] of hosts.entries()) {
      const keyFile = path.join(tmp, hosts.length === 1 ? 'id' : `id-${i}`);
      const knownHosts = path.join(tmp, hosts.length === 1 ? 'known_hosts' : `known_hosts-${i}`);
      const alias = hostKeyAlias(h.name);
      await writeFile(keyFile, h.privateKey.endsWith('\n') ? h.privateKey : h.privateKey + '\n', { mode: 0o600 });
      await writeFile(knownHosts, knownHostsLine(h.hostPublicKey, alias), { mode: 0o600 });
      inventoryHosts[h.name] = {
        ...(h.vars ?? {}),
        ansible_host: h.address,
        ansible_port: h.port,
        ansible_user: h.user,
        ansible_ssh_private_key_file: keyFile,
        ansible_ssh_common_args: sshCommonArgs(knownHosts, alias),
      };
    }
    // The yaml inventory plugin honours the tags too; ansible_port stays an int.
    const inventoryDoc = { all: { hosts: inventoryHosts } };
    await writeFile(inventory, toUnsafeYaml(inventoryDoc), { mode: 0o600 });

    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      HOME: tmp,
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      ANSIBLE_CONFIG: path.join(dir, 'ansible.cfg'),
      ANSIBLE_STDOUT_CALLBACK: 'ao_recap',
      ANSIBLE_SSH_CONTROL_PATH_DIR: cpDir,
      ANSIBLE_LOCAL_TEMP: localTmp,
      ANSIBLE_HOME: path.join(tmp, 'home'),
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_DEPRECATION_WARNINGS: 'False',
      ANSIBLE_RETRY_FILES_ENABLED: 'False',
      ...(opts.strategy ? { ANSIBLE_STRATEGY: opts.strategy } : {}),
      PYTHONDONTWRITEBYTECODE: '1',
      // Inherited by every process of the run (ssh included): how a sweep finds them after a worker crash.
      [RUN_MARKER_ENV]: path.basename(tmp),
    };
    const argv = ['-i', inventory, '-e', `@${varsFile}`, '--forks', String(Math.min(100, Math.max(5, hosts.length))), playbook];
    const bin = process.env.ANSIBLE_PLAYBOOK_PATH?.trim() || 'ansible-playbook';
    if (hosts.length === 1) opts.log?.info('ansible-playbook starting', { host: hosts[0].name, address: hosts[0].address, port: hosts[0].port });
    else opts.log?.info('ansible-playbook starting', { hosts: hosts.length });

    const child = execa(bin, argv, {
      cwd: dir,
      env,
      extendEnv: false,
      // Own process group, so cancellation can take ansible's ssh children down with it.
      detached: true,
      reject: false,
      stdin: 'ignore',
      all: false,
      maxBuffer: 16 * 1024 * 1024,
    });
    if (opts.onHostDone && child.stdout) {
      const onDone = opts.onHostDone;
      let pending = '';
      child.stdout.on('data', (chunk: Buffer) => {
        pending += chunk.toString('utf8');
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) {
          if (!line.includes('"ao_host_done"')) continue;
          try {
            const doc = JSON.parse(line) as { ao_host_done?: unknown; counts?: HostRecap; custom?: Record<string, unknown> };
            if (typeof doc.ao_host_done === 'string' && doc.counts) onDone(doc.ao_host_done, { counts: doc.counts, custom: doc.custom ?? {} });
          } catch {
            // not our line after all: the final recap still has every host
          }
        }
      });
    }
    if (child.pid !== undefined) {
      // Ansible is bulk work: below the control plane (Temporal, the API, tunnel heartbeats) on a shared
      // controller. Forks inherit it; set before ansible forks anything of note (best effort).
      try {
        os.setPriority(child.pid, PLAYBOOK_NICENESS);
      } catch {
        // not allowed here (e.g. a restricted container): run at normal priority
      }
      opts.onSpawn?.(child.pid);
      await writeRunOwner(tmp, child.pid).catch((e: Error) => opts.log?.warn('could not record the playbook run owner', { error: e.message }));
    }

    let timedOut = false;
    let cancelled = false;
    const killGroup = (sig: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // already gone
      }
    };
    let escalation: NodeJS.Timeout | undefined;
    const stop = (why: 'timeout' | 'cancel') => {
      if (why === 'timeout') timedOut = true;
      else cancelled = true;
      killGroup('SIGTERM');
      escalation ??= setTimeout(() => killGroup('SIGKILL'), 5_000);
    };
    const timer = setTimeout(() => stop('timeout'), opts.timeoutMs ?? 15 * 60_000);
    // Heartbeats keep the activity alive and are how cancellation reaches us.
    const beat = ctx
      ? setInterval(() => ctx.heartbeat({ step: 'ansible-playbook', elapsedMs: Date.now() - started }), opts.heartbeatIntervalMs ?? 2_000)
      : undefined;
    const onAbort = () => stop('cancel');
    opts.signal?.addEventListener('abort', onAbort);
    ctx?.cancellationSignal.addEventListener('abort', onAbort);
    // An abort that came before the listeners (while the owner record was written) still stops the run.
    if (opts.signal?.aborted || ctx?.cancellationSignal.aborted) onAbort();
    try {
      const res = await child;
      return {
        exitCode: typeof res.exitCode === 'number' ? res.exitCode : null,
        recap: parseRecap(res.stdout ?? ''),
        stderrTail: stderrTail(res.stderr ?? '', secrets),
        timedOut,
        cancelled,
        durationMs: Date.now() - started,
      };
    } finally {
      clearTimeout(timer);
      if (escalation) clearTimeout(escalation);
      if (beat) clearInterval(beat);
      opts.signal?.removeEventListener('abort', onAbort);
      ctx?.cancellationSignal.removeEventListener('abort', onAbort);
      // Whatever is left of the group (a hung ssh) goes too, and is gone before we return.
      killGroup('SIGKILL');
      if (child.pid !== undefined) await groupGone(child.pid, 5_000);
      await closeControlMasters(cpDir);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
