import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cloudrootScript, BEGIN_MARKER, SUDO_GATE } from '../../activities/ssh/cloudroot';
import { shellQuote } from '../../activities/ssh/shell';
import { deployDir } from '../../activities/ansible/run-playbook';
import { summarizeHostPoints } from '../../activities/metrics/influx-query';

/**
 * The hand-run way, as an operator with a terminal would do it — OpenSSH and ansible-playbook, no orchestrator:
 *   probe      ssh-keyscan (trust on first use) + one password login (`id -u; uname -m`)
 *   cloudroot  ssh-keygen a key; over the password login, `sudo -S` runs the same idempotent script our
 *              activity runs (user, authorized_keys, visudo-checked drop-in); then `ssh -i key cloudroot@ sudo -n true`
 *   install    ansible-playbook with the SAME deploy/ansible/ansible.cfg, onboard.yml and role vars (artifact mode,
 *              the same Telegraf binary, output http://127.0.0.1:18086)
 *   tunnel     `ssh -N -R 127.0.0.1:18086:127.0.0.1:<influx>` (ready at "remote forward success")
 *   verify     poll InfluxDB with the same query as the product (summarizeHostPoints), every second
 * The bootstrap password never goes into argv: ssh reads it from an SSH_ASKPASS helper (a 0700 script that prints
 * an environment variable of the ssh process only), and sudo reads it from stdin.
 */

export interface HandHost {
  hostId: string;
  address: string;
  port: number;
  bootstrapUser: string;
  bootstrapPassword: string;
}

export interface HandInflux {
  url: string;
  token: string;
  org: string;
  bucket: string;
  port: number;
}

export type HandStep = 'probe' | 'cloudroot' | 'install-agent' | 'tunnel' | 'verify';
export type StepTimes = Partial<Record<HandStep, number>>;

export const TUNNEL_PORT = 18086;

interface Proc {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program (no shell), optional stdin, bounded. */
export function sh(file: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<Proc> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.stdin.on('error', () => undefined);
    child.on('error', reject);
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, opts.timeoutMs ?? 10 * 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

function must(what: string, p: Proc): Proc {
  if (p.code !== 0) throw new Error(`${what} failed (exit ${p.code}): ${p.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return p;
}

/** A private work dir (0700) for keys, known_hosts, the askpass helper and ansible's files. */
export class HandWorkspace {
  readonly dir: string;
  readonly knownHosts: string;
  readonly askpass: string;
  constructor(label: string) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), `ao-byhand-${label}-`));
    chmodSync(this.dir, 0o700);
    this.knownHosts = path.join(this.dir, 'known_hosts');
    writeFileSync(this.knownHosts, '', { mode: 0o600 });
    this.askpass = path.join(this.dir, 'askpass');
    // Prints the password ssh was started with in its own environment; nothing secret is in this file.
    writeFileSync(this.askpass, '#!/bin/sh\nprintf \'%s\\n\' "$AO_BYHAND_PASSWORD"\n', { mode: 0o700 });
  }
  keyFile(hostId: string): string {
    return path.join(this.dir, `id_${hostId}`);
  }
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const baseSsh = (ws: HandWorkspace, h: HandHost) => [
  '-F', '/dev/null', '-p', String(h.port),
  '-o', `UserKnownHostsFile=${ws.knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null',
  '-o', 'StrictHostKeyChecking=yes', '-o', 'ConnectTimeout=20', '-o', 'LogLevel=ERROR',
];

function passwordSsh(ws: HandWorkspace, h: HandHost, command: string, input: string): Promise<Proc> {
  return sh('ssh', [
    ...baseSsh(ws, h),
    '-o', 'PreferredAuthentications=password,keyboard-interactive', '-o', 'PubkeyAuthentication=no', '-o', 'NumberOfPasswordPrompts=1',
    '-T', `${h.bootstrapUser}@${h.address}`, command,
  ], {
    input,
    env: { PATH: process.env.PATH, SSH_ASKPASS: ws.askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: 'none', AO_BYHAND_PASSWORD: h.bootstrapPassword },
    timeoutMs: 120_000,
  });
}

export function keySsh(ws: HandWorkspace, h: HandHost, extra: string[], command?: string): string[] {
  return [
    ...baseSsh(ws, h), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-i', ws.keyFile(h.hostId),
    ...extra, `cloudroot@${h.address}`, ...(command ? [command] : []),
  ];
}

export async function probeByHand(ws: HandWorkspace, h: HandHost): Promise<void> {
  const scan = must('ssh-keyscan', await sh('ssh-keyscan', ['-T', '10', '-t', 'ed25519', '-p', String(h.port), h.address]));
  const lines = scan.stdout.split('\n').filter((l) => l && !l.startsWith('#'));
  if (!lines.length) throw new Error(`ssh-keyscan ${h.address}: no key`);
  writeFileSync(ws.knownHosts, lines.join('\n') + '\n', { flag: 'a' });
  must('password login', await passwordSsh(ws, h, 'id -u; uname -m; command -v python3', ''));
}

export async function cloudrootByHand(ws: HandWorkspace, h: HandHost): Promise<void> {
  const key = ws.keyFile(h.hostId);
  must('ssh-keygen', await sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `byhand:${h.hostId}`, '-f', key]));
  const pub = readFileSync(`${key}.pub`, 'utf8').trim();
  const script = cloudrootScript('cloudroot', pub);
  // The same sudo gate as the activity: the password line can only ever reach sudo.
  const res = await passwordSsh(ws, h, `sudo -k -S -p '' bash -c ${shellQuote(SUDO_GATE)}`, `${h.bootstrapPassword}\n${BEGIN_MARKER}\n${script}`);
  if (res.code !== 0 || !res.stdout.includes('cloudroot-ok')) must('cloudroot script', { ...res, code: res.code || 1 });
  must('cloudroot proof', await sh('ssh', keySsh(ws, h, ['-T'], 'sudo -n true'), { timeoutMs: 60_000 }));
}

/** One ansible-playbook run over `hosts` (forks = hosts.length): the same cfg, playbook and vars as the activity. */
export async function installByHand(
  ws: HandWorkspace,
  hosts: HandHost[],
  influx: HandInflux,
  telegrafPath: string,
  tag = 'run',
): Promise<{ recapOk: boolean; stdoutTail: string }> {
  const dir = deployDir();
  const work = path.join(ws.dir, `ansible-${tag}`);
  mkdirSync(work, { mode: 0o700 });
  const inventory = path.join(work, 'inventory.json');
  const vars = path.join(work, 'vars.json');
  const inv: Record<string, unknown> = {};
  for (const h of hosts) {
    inv[h.hostId] = {
      ansible_host: h.address,
      ansible_port: h.port,
      ansible_user: 'cloudroot',
      ansible_ssh_private_key_file: ws.keyFile(h.hostId),
      ansible_ssh_common_args: `-F /dev/null -o UserKnownHostsFile=${ws.knownHosts} -o GlobalKnownHostsFile=/dev/null`,
      telegraf_host_id: h.hostId,
    };
  }
  writeFileSync(inventory, JSON.stringify({ all: { hosts: inv } }), { mode: 0o600 });
  writeFileSync(vars, JSON.stringify({
    telegraf_state: 'present',
    telegraf_labels: {},
    telegraf_install_mode: 'artifact',
    telegraf_artifact_path: telegrafPath,
    telegraf_output_url: `http://127.0.0.1:${TUNNEL_PORT}`,
    telegraf_influx_token: influx.token,
    telegraf_influx_org: influx.org,
    telegraf_influx_bucket: influx.bucket,
  }), { mode: 0o600 });
  const cp = path.join(work, 'cp');
  const res = await sh('ansible-playbook', ['-f', String(Math.max(1, hosts.length)), '-i', inventory, '-e', `@${vars}`, path.join(dir, 'onboard.yml')], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      HOME: work,
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      ANSIBLE_CONFIG: path.join(dir, 'ansible.cfg'),
      ANSIBLE_SSH_CONTROL_PATH_DIR: cp,
      ANSIBLE_LOCAL_TEMP: path.join(work, 'tmp'),
      ANSIBLE_HOME: path.join(work, 'home'),
      ANSIBLE_NOCOLOR: '1',
    },
    timeoutMs: 20 * 60_000,
  });
  // ControlPersist masters outlive the run: close them as the operator's shell would at logout.
  try {
    for (const s of readdirSync(cp)) await sh('ssh', ['-o', `ControlPath=${path.join(cp, s)}`, '-O', 'exit', 'x'], { timeoutMs: 5_000 });
  } catch {
    /* no masters */
  }
  const tail = res.stdout.split('\n').slice(-3 - hosts.length).join('\n');
  if (res.code !== 0) throw new Error(`ansible-playbook failed (exit ${res.code}):\n${tail}\n${res.stderr.split('\n').slice(-5).join('\n')}`);
  return { recapOk: /failed=0/.test(res.stdout), stdoutTail: tail };
}

export interface HandTunnel {
  pid: number;
  stop(): Promise<void>;
}

/** `ssh -N -R` as cloudroot; resolves once ssh reports the remote forward established. */
export function tunnelByHand(ws: HandWorkspace, h: HandHost, influxPort: number, bindPort = TUNNEL_PORT, extra: string[] = []): Promise<HandTunnel> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', keySsh(ws, h, [
      '-N', '-o', 'ExitOnForwardFailure=yes', '-o', 'ServerAliveInterval=15', ...extra,
      '-R', `127.0.0.1:${bindPort}:127.0.0.1:${influxPort}`,
    ]).map((a) => (a === 'LogLevel=ERROR' ? 'LogLevel=DEBUG1' : a)), { stdio: ['ignore', 'ignore', 'pipe'] });
    let buf = '';
    let done = false;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const handle: HandTunnel = {
      pid: child.pid!,
      async stop() {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        await exited;
      },
    };
    child.stderr!.on('data', (b: Buffer) => {
      if (done) return; // keep draining, stop parsing
      buf += b.toString();
      if (/remote forward success/.test(buf)) {
        done = true;
        resolve(handle);
      }
      if (buf.length > 1 << 20) buf = buf.slice(-4096);
    });
    child.once('exit', (code) => {
      if (!done) reject(new Error(`ssh -R exited (${code}) before the forward was up: ${buf.split('\n').slice(-3).join(' | ')}`));
    });
  });
}

/** Polls InfluxDB every second (the product's verify cadence) until points tagged with the host id arrive. */
export async function verifyByHand(influx: HandInflux, hostId: string, sinceMs: number, deadlineMs = 180_000): Promise<number> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const s = await summarizeHostPoints(influx, hostId, sinceMs).catch(() => ({ count: 0 }));
    if (s.count > 0) return s.count;
    if (Date.now() > deadline) throw new Error(`no points for ${hostId} within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** One host, start to finish, timing each step. The tunnel is left running (returned) for the caller to stop. */
export async function onboardByHand(
  ws: HandWorkspace,
  h: HandHost,
  influx: HandInflux,
  telegrafPath: string,
): Promise<{ steps: StepTimes; totalMs: number; tunnel: HandTunnel }> {
  const steps: StepTimes = {};
  const t0 = Date.now();
  const timed = async <T>(name: HandStep, f: () => Promise<T>): Promise<T> => {
    const s = Date.now();
    const r = await f();
    steps[name] = Date.now() - s;
    return r;
  };
  await timed('probe', () => probeByHand(ws, h));
  await timed('cloudroot', () => cloudrootByHand(ws, h));
  const installStart = Date.now();
  await timed('install-agent', () => installByHand(ws, [h], influx, telegrafPath, h.hostId));
  const tunnel = await timed('tunnel', () => tunnelByHand(ws, h, influx.port));
  try {
    await timed('verify', () => verifyByHand(influx, h.hostId, installStart - 1000));
  } catch (e) {
    await tunnel.stop();
    throw e;
  }
  return { steps, totalMs: Date.now() - t0, tunnel };
}
