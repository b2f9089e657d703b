import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cleanupStale } from './cleanup';
import {
  defaultBaseDir,
  ensureFleetRangeStaysLocal,
  fleetUnsupportedReason,
  NETNS_PREFIX,
  RUN_DIR_PREFIX,
  RUN_ID_PATTERN,
} from './environment';
import { FleetError, FleetHostStartError, FleetTeardownError, FleetUnsupportedError } from './errors';
import { sha256Fingerprint } from './fingerprint';
import { etcHosts, INIT_PY, SETUP_SH, sshdConfig } from './host-init';
import { acquireLease, Lease, lanAddresses, linkAddresses, releaseLease } from './leases';
import { cmdline, comm, isAlive, listPids, nsOf, procParent, procStartTime, ProcessIdentity, selfIdentity, waitFor } from './proc';
import { TcpRelay } from './relay';
import { ipBatch, run, RunResult } from './run';
import { applyShaping, LinkEnd, Shaping } from './shaping';

/**
 * The test fleet (DESIGN.md §8): disposable "machines" on this Linux box, each a network namespace + overlayfs root
 * over the cached Debian base + its own hostname, pid and mount namespaces + sshd with a password-login bootstrap
 * user. Needs root. Addresses come from 10.213.0.0/16 only, and there are no default routes: a host reaches exactly
 * the addresses its topology gives it.
 */

export type Topology = 'direct' | 'reachable-influx' | 'bastion' | 'private';

export interface FleetHost {
  readonly name: string;
  readonly topology: Topology;
  /** Where its sshd listens: the root-facing address, or the private address behind a bastion. */
  readonly address: string;
  readonly sshPort: number;
  readonly bootstrapUser: string;
  readonly bootstrapPassword: string;
  readonly hostname: string;
  /** Network namespace name (`ao-<runId>-<name>`). */
  readonly netns: string;
  /** PID (root pid namespace) of the host's PID 1; killing it takes the host down. */
  readonly initPid: number;
  /** `reachable-influx`: InfluxDB as the host sees it (the harness's relay on the gateway address). */
  readonly influxUrl?: string;
  /** Gateway address of the host's network as the host sees it (root ns side, or the bastion's private side). */
  readonly gateway: string;
  /** `private`: the bastion's address on the private network (where its remote forwards can bind). */
  readonly proxyAddress?: string;
  /** `private`: the bastion the host hangs off. */
  readonly bastion?: FleetHost;
  /** Wall time addHost took, for the record. */
  readonly startupMs: number;
}

export interface AddHostOptions {
  name: string;
  topology: Topology;
  /** Required for `private`. */
  bastion?: FleetHost;
  sshPort?: number;
  bootstrapUser?: string;
  /** Random when omitted. Any characters except NUL and line breaks. */
  bootstrapPassword?: string;
  /** Required for `reachable-influx`: the loopback service the relay forwards to. */
  influxTarget?: { host: string; port: number };
  /** Port the relay listens on at the gateway address; defaults to the target's port. */
  influxRelayPort?: number;
  clientAliveIntervalSec?: number;
  clientAliveCountMax?: number;
  /** `GatewayPorts clientspecified`; defaults to true on bastions only. */
  gatewayPorts?: boolean;
  /** Defaults to the name. */
  hostname?: string;
}

/**
 * Note: like child_process.exec, exec() resolves when the command's stdout/stderr close; a background process
 * started by the command must redirect its output (`nohup x >/var/log/x.log 2>&1 &`) or exec() waits for it.
 */
export interface ExecOptions {
  input?: string;
  timeoutMs?: number;
}

export interface FleetOptions {
  /** Short id in netns names and the run dir; random when omitted. [a-z0-9]{1,12} */
  runId?: string;
  /** The read-only base root file system (overlay lower dir); default `<cache>/fleet/base`. */
  baseDir?: string;
  /** Where run dirs go; default os.tmpdir(). */
  runRoot?: string;
  /** Per-host deadline for sshd to accept connections. */
  startTimeoutMs?: number;
  /** Remove leftovers of crashed runs first (default true). */
  cleanupStale?: boolean;
}

export interface Fleet {
  readonly runId: string;
  readonly runDir: string;
  readonly hosts: readonly FleetHost[];
  addHost(opts: AddHostOptions): Promise<FleetHost>;
  exec(host: FleetHost, command: string, opts?: ExecOptions): Promise<RunResult>;
  hostKeySha256(host: FleetHost): Promise<string>;
  regenerateHostKeys(host: FleetHost): Promise<void>;
  killSshSessions(host: FleetHost, user?: string): Promise<void>;
  setLinkDown(host: FleetHost, down: boolean): Promise<void>;
  dropPackets(host: FleetHost, on: boolean): Promise<void>;
  setLatency(host: FleetHost, ms: number): Promise<void>;
  destroyHost(host: FleetHost): Promise<void>;
  destroy(): Promise<void>;
}

const HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

interface HostState {
  host?: FleetHost;
  name: string;
  netns: string;
  dir: string;
  leases: Lease[];
  /** Root-side veth (root ns) or bastion-side port (in `peerNetns`). */
  peerIf?: string;
  peerNetns?: string;
  relay?: TcpRelay;
  child?: ChildProcess;
  childExited?: Promise<void>;
  init?: ProcessIdentity;
  /** Bastions: the private network. */
  lan?: { lease: Lease; nextSlot: number; bridgeAddress: string };
  bastionName?: string;
  shaping: Shaping;
  teardown?: Promise<void>;
}

/** Fleets not yet destroyed, torn down synchronously if the process exits without destroy(). */
const liveFleets = new Set<FleetImpl>();
let exitHookInstalled = false;

class FleetImpl implements Fleet {
  private readonly states = new Map<string, HostState>();
  private destroying?: Promise<void>;
  private readonly inFlight = new Set<Promise<FleetHost>>();

  constructor(
    readonly runId: string,
    readonly runDir: string,
    private readonly baseDir: string,
    private readonly startTimeoutMs: number,
  ) {
    liveFleets.add(this);
    if (liveFleets.size === 1 && !exitHookInstalled) {
      exitHookInstalled = true;
      process.once('exit', () => {
        for (const f of liveFleets) f.emergencyTeardown();
      });
    }
  }

  get hosts(): readonly FleetHost[] {
    return [...this.states.values()].flatMap((s) => (s.host ? [s.host] : []));
  }

  // ---------- creation ----------

  addHost(opts: AddHostOptions): Promise<FleetHost> {
    const p = this.doAddHost(opts);
    this.inFlight.add(p);
    const forget = () => this.inFlight.delete(p);
    p.then(forget, forget);
    return p;
  }

  private async doAddHost(opts: AddHostOptions): Promise<FleetHost> {
    if (this.destroying) throw new FleetError('fleet is destroyed');
    const t0 = Date.now();
    const o = this.validate(opts);
    const state: HostState = {
      name: o.name,
      netns: `${NETNS_PREFIX}${this.runId}-${o.name}`,
      dir: path.join(this.runDir, o.name),
      leases: [],
      shaping: { drop: false, latencyMs: 0 },
    };
    this.states.set(o.name, state);
    // destroy() may run while we await: stop at the next step and clean up what this call created.
    const alive = () => {
      if (this.destroying || state.teardown) throw new FleetError(`host ${o.name}: fleet destroyed during addHost`);
    };
    try {
      const net = await this.createNetwork(state, o);
      alive();
      const hostname = o.hostname ?? o.name;
      this.writeRootOverlay(state, {
        hostname,
        address: net.address,
        sshd: sshdConfig({
          port: o.sshPort,
          gatewayPorts: o.gatewayPorts ?? o.topology === 'bastion',
          clientAliveIntervalSec: o.clientAliveIntervalSec,
          clientAliveCountMax: o.clientAliveCountMax,
        }),
      });
      const initPid = await this.startInit(state, {
        hostname,
        user: o.bootstrapUser,
        password: o.bootstrapPassword,
        port: o.sshPort,
      });
      alive();
      let influxUrl: string | undefined;
      if (o.topology === 'reachable-influx') {
        const target = o.influxTarget!;
        state.relay = new TcpRelay(net.gateway, o.influxRelayPort ?? target.port, target);
        await state.relay.start();
        alive();
        influxUrl = `http://${net.gateway}:${state.relay.port}`;
      }
      const bastion = o.bastion;
      const host: FleetHost = Object.freeze({
        name: o.name,
        topology: o.topology,
        address: net.address,
        sshPort: o.sshPort,
        bootstrapUser: o.bootstrapUser,
        bootstrapPassword: o.bootstrapPassword,
        hostname,
        netns: state.netns,
        initPid,
        gateway: net.gateway,
        ...(influxUrl ? { influxUrl } : {}),
        ...(bastion ? { bastion, proxyAddress: net.gateway } : {}),
        startupMs: Date.now() - t0,
      });
      state.host = host;
      return host;
    } catch (e) {
      // A concurrent teardown may have run before this call created its last resources: tear down again.
      await state.teardown?.catch(() => undefined);
      state.teardown = this.doTeardownHost(state);
      await state.teardown.catch(() => undefined);
      throw e;
    }
  }

  private validate(opts: AddHostOptions): Required<Pick<AddHostOptions, 'name' | 'topology' | 'sshPort' | 'bootstrapUser' | 'bootstrapPassword'>> & AddHostOptions {
    const name = opts.name;
    if (!/^[a-z][a-z0-9-]{0,23}$/.test(name ?? '')) {
      throw new FleetError(`host name must match [a-z][a-z0-9-]{0,23}, got "${name}"`);
    }
    if (this.states.has(name)) throw new FleetError(`host "${name}" already exists in fleet ${this.runId}`);
    if (!['direct', 'reachable-influx', 'bastion', 'private'].includes(opts.topology)) {
      throw new FleetError(`unknown topology "${opts.topology}"`);
    }
    const sshPort = opts.sshPort ?? 22;
    if (!Number.isInteger(sshPort) || sshPort < 1 || sshPort > 65535) throw new FleetError(`bad sshPort ${sshPort}`);
    const bootstrapUser = opts.bootstrapUser ?? 'bootstrap';
    if (!/^[a-z_][a-z0-9_-]{0,30}$/.test(bootstrapUser) || bootstrapUser === 'root') {
      throw new FleetError(`bootstrapUser must be a non-root POSIX user name, got "${bootstrapUser}"`);
    }
    const bootstrapPassword = opts.bootstrapPassword ?? randomBytes(18).toString('base64url');
    if (bootstrapPassword.length === 0 || /[\0\r\n]/.test(bootstrapPassword)) {
      throw new FleetError('bootstrapPassword must be non-empty without NUL or line breaks');
    }
    if (opts.topology === 'private') {
      const b = opts.bastion;
      const bs = b && this.states.get(b.name);
      if (!b || !bs || bs.host !== b || b.topology !== 'bastion' || bs.teardown) {
        throw new FleetError('a private host needs `bastion`: a live bastion host of this fleet');
      }
    } else if (opts.bastion) {
      throw new FleetError('`bastion` only applies to private hosts');
    }
    if (opts.topology === 'reachable-influx') {
      const t = opts.influxTarget;
      if (!t || !t.host || !Number.isInteger(t.port) || t.port < 1 || t.port > 65535) {
        throw new FleetError('a reachable-influx host needs `influxTarget: { host, port }`');
      }
      const rp = opts.influxRelayPort;
      if (rp !== undefined && (!Number.isInteger(rp) || rp < 1 || rp > 65535)) throw new FleetError(`bad influxRelayPort ${rp}`);
    }
    for (const k of ['clientAliveIntervalSec', 'clientAliveCountMax'] as const) {
      const v = opts[k];
      if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new FleetError(`${k} must be a non-negative integer`);
    }
    return { ...opts, name, sshPort, bootstrapUser, bootstrapPassword };
  }

  /** Namespace + links. Every resource is recorded in `state` before it is created, so teardown finds it. */
  private async createNetwork(state: HostState, o: AddHostOptions): Promise<{ address: string; gateway: string }> {
    if (o.topology === 'private') {
      const bastion = this.states.get(o.bastion!.name)!;
      const lan = bastion.lan!;
      const slot = lan.nextSlot++;
      const address = lanAddresses(lan.lease.index).hostAt(slot);
      state.bastionName = bastion.name;
      state.peerIf = `p${slot}`;
      state.peerNetns = bastion.netns;
      await ipBatch([`netns add ${state.netns}`]);
      await ipBatch(
        [
          `link add ${state.peerIf} type veth peer name eth0 netns ${state.netns}`,
          `link set ${state.peerIf} master br0`,
          `link set ${state.peerIf} up`,
        ],
        bastion.netns,
      );
      await ipBatch(['link set lo up', `addr add ${address}/24 dev eth0`, 'link set eth0 up'], state.netns);
      return { address, gateway: lan.bridgeAddress };
    }

    const link = acquireLease('link', this.runId);
    state.leases.push(link);
    const a = linkAddresses(link.index);
    state.peerIf = a.ifname;
    await ipBatch([`netns add ${state.netns}`, `link add ${a.ifname} type veth peer name eth0 netns ${state.netns}`]);
    // No IPv6 on the root side: a link-local address there would expose the root ns's wildcard listeners.
    try {
      fs.writeFileSync(`/proc/sys/net/ipv6/conf/${a.ifname}/disable_ipv6`, '1');
    } catch {
      /* kernel without IPv6 */
    }
    await ipBatch([`addr add ${a.gateway}/${a.prefix} dev ${a.ifname}`, `link set ${a.ifname} up`]);
    const inside = ['link set lo up', `addr add ${a.host}/${a.prefix} dev eth0`, 'link set eth0 up'];
    if (o.topology === 'bastion') {
      const lease = acquireLease('lan', this.runId);
      state.leases.push(lease);
      const lan = lanAddresses(lease.index);
      state.lan = { lease, nextSlot: 0, bridgeAddress: lan.bastion };
      inside.push('link add br0 type bridge', `addr add ${lan.bastion}/${lan.prefix} dev br0`, 'link set br0 up');
    }
    await ipBatch(inside, state.netns);
    return { address: a.host, gateway: a.gateway };
  }

  /** Files the host needs before its PID 1 starts, written straight into the overlay's upper dir. */
  private writeRootOverlay(state: HostState, f: { hostname: string; address: string; sshd: string }): void {
    const upper = path.join(state.dir, 'upper');
    for (const d of ['upper', 'work', 'merged']) fs.mkdirSync(path.join(state.dir, d), { recursive: true });
    // The upper dir's own mode/owner become those of the host's `/` (mkdtemp-style 0700 would lock users out).
    const rootStat = fs.statSync(this.baseDir);
    fs.chmodSync(upper, rootStat.mode & 0o7777);
    fs.chownSync(upper, rootStat.uid, rootStat.gid);
    const mkdirLike = (rel: string) => {
      let cur = '';
      for (const part of rel.split('/')) {
        cur = cur ? `${cur}/${part}` : part;
        const dst = path.join(upper, cur);
        if (fs.existsSync(dst)) continue;
        const st = fs.statSync(path.join(this.baseDir, cur));
        fs.mkdirSync(dst, { mode: st.mode & 0o7777 });
        fs.chmodSync(dst, st.mode & 0o7777);
        fs.chownSync(dst, st.uid, st.gid);
      }
    };
    mkdirLike('etc/ssh/sshd_config.d');
    fs.writeFileSync(path.join(upper, 'etc/hostname'), `${f.hostname}\n`, { mode: 0o644 });
    fs.writeFileSync(path.join(upper, 'etc/hosts'), etcHosts(f.hostname, f.address), { mode: 0o644 });
    fs.writeFileSync(path.join(upper, 'etc/ssh/sshd_config.d/00-ao-fleet.conf'), f.sshd, { mode: 0o644 });
  }

  /** Starts the host's PID 1 and resolves with its pid once sshd accepts connections (no fixed sleeps). */
  private startInit(state: HostState, p: { hostname: string; user: string; password: string; port: number }): Promise<number> {
    const logFile = path.join(state.dir, 'init.log');
    const logFd = fs.openSync(logFile, 'a', 0o600);
    const child = spawn(
      'ip',
      ['netns', 'exec', state.netns, 'unshare', '--mount', '--uts', '--pid', '--fork', '--propagation', 'private',
        '--kill-child', 'sh', '-c', SETUP_SH],
      {
        stdio: ['pipe', 'pipe', logFd],
        env: {
          PATH: process.env.PATH ?? HOST_PATH,
          AO_LOWER: this.baseDir,
          AO_UPPER: path.join(state.dir, 'upper'),
          AO_WORK: path.join(state.dir, 'work'),
          AO_MERGED: path.join(state.dir, 'merged'),
          AO_HOSTNAME: p.hostname,
          AO_USER: p.user,
          AO_SSH_PORT: String(p.port),
          AO_INIT_PY: INIT_PY,
        },
      },
    );
    fs.closeSync(logFd);
    state.child = child;
    state.childExited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    child.on('error', () => undefined);
    child.stdin!.on('error', () => undefined);
    // The credential goes over a pipe to chpasswd's stdin; it never appears in argv or the environment.
    child.stdin!.end(`${p.user}:${p.password}\n`);

    const logTail = () => {
      try {
        return fs.readFileSync(logFile, 'utf8').split('\n').slice(-30).join('\n');
      } catch {
        return '';
      }
    };
    return new Promise<number>((resolve, reject) => {
      let buf = '';
      let pid: number | undefined;
      let settled = false;
      const finish = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        child.stdout!.removeAllListeners('data');
        child.stdout!.destroy();
        child.removeListener('exit', onExit);
        if (err) reject(err);
        else {
          child.unref();
          resolve(pid!);
        }
      };
      const onExit = (code: number | null, signal: string | null) =>
        finish(new FleetHostStartError(`host ${state.name}: init exited (${code ?? signal}) before sshd was ready`, logTail()));
      const timer = setTimeout(
        () => finish(new FleetHostStartError(`host ${state.name}: sshd not ready within ${this.startTimeoutMs} ms`, logTail())),
        this.startTimeoutMs,
      );
      child.once('exit', onExit);
      child.stdout!.on('data', (chunk: Buffer) => {
        buf += chunk.toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          const m = /^PID (\d+)$/.exec(line);
          if (m) {
            pid = Number(m[1]);
            const start = procStartTime(pid);
            if (start) state.init = { pid, start };
          } else if (line === 'READY') {
            if (!pid || !state.init || procParent(pid) !== child.pid) {
              finish(new FleetHostStartError(`host ${state.name}: could not identify its PID 1`, logTail()));
            } else finish();
          }
        }
      });
    });
  }

  // ---------- operations ----------

  private stateOf(host: FleetHost): HostState {
    const s = this.states.get(host.name);
    if (!s || s.host !== host) throw new FleetError(`host "${host.name}" is not part of fleet ${this.runId}`);
    if (s.teardown) throw new FleetError(`host "${host.name}" has been destroyed`);
    if (!s.init || !isAlive(s.init)) throw new FleetError(`host "${host.name}" is not running (its PID 1 is gone)`);
    return s;
  }

  async exec(host: FleetHost, command: string, opts: ExecOptions = {}): Promise<RunResult> {
    const s = this.stateOf(host);
    // All namespaces and the root of the host's PID 1, with a clean environment (nothing leaks from the test process).
    return run(
      'nsenter',
      ['-t', String(s.init!.pid), '-a', '-r', '-w', '/usr/bin/env', '-i', `PATH=${HOST_PATH}`, 'HOME=/root',
        'LANG=C.UTF-8', 'USER=root', 'LOGNAME=root', '/bin/sh', '-c', command],
      { input: opts.input, timeoutMs: opts.timeoutMs ?? 120_000, allowFailure: true },
    );
  }

  async hostKeySha256(host: FleetHost): Promise<string> {
    const s = this.stateOf(host);
    const pub = await fs.promises.readFile(hostRootPath(s.init!.pid, "etc/ssh/ssh_host_ed25519_key.pub"), 'utf8');
    return sha256Fingerprint(pub);
  }

  /** The listening sshd: the child of the host's PID 1 named sshd. */
  private sshdListener(s: HostState): number | undefined {
    const initPid = s.init!.pid;
    return listPids().find((p) => procParent(p) === initPid && comm(p) === 'sshd');
  }

  async regenerateHostKeys(host: FleetHost): Promise<void> {
    const s = this.stateOf(host);
    const gen = await this.exec(
      host,
      'set -e; rm -f /etc/ssh/ssh_host_*; for t in ed25519 ecdsa; do ' +
        'ssh-keygen -q -t "$t" -N "" -C "root@$(hostname)" -f "/etc/ssh/ssh_host_${t}_key"; done',
    );
    if (gen.exitCode !== 0) throw new FleetError(`host ${host.name}: ssh-keygen failed: ${gen.stderr.trim()}`);
    const listener = this.sshdListener(s);
    if (!listener) throw new FleetError(`host ${host.name}: no listening sshd found`);
    process.kill(listener, 'SIGHUP'); // sshd re-execs itself and reloads the keys
    const want = (await fs.promises.readFile(hostRootPath(s.init!.pid, "etc/ssh/ssh_host_ed25519_key.pub"), 'utf8'))
      .trim()
      .split(/\s+/)[1];
    const served = await waitFor(async () => {
      const r = await this.exec(host, `ssh-keyscan -T 2 -t ed25519 -p ${host.sshPort} 127.0.0.1 2>/dev/null`, {
        timeoutMs: 5_000,
      });
      return r.stdout.includes(want);
    }, 15_000, 50);
    if (!served) throw new FleetError(`host ${host.name}: sshd did not present the new host key within 15 s`);
  }

  async killSshSessions(host: FleetHost, user?: string): Promise<void> {
    const s = this.stateOf(host);
    const pidNs = nsOf(s.init!.pid, 'pid');
    const listener = this.sshdListener(s);
    const victims = listPids().filter((p) => {
      if (p === listener || p === s.init!.pid || comm(p) !== 'sshd' || nsOf(p, 'pid') !== pidNs) return false;
      if (!user) return true;
      // Per-session titles: "sshd: <user> [priv]", "sshd: <user>@pts/0", "sshd: <user>@notty", "sshd: <user> [net]",
      // and a bare "sshd: <user>" for forward-only sessions (ssh -N, our remote forwards).
      const title = cmdline(p);
      return title === `sshd: ${user}` || title.startsWith(`sshd: ${user} `) || title.startsWith(`sshd: ${user}@`);
    });
    const ids = victims.flatMap((pid) => {
      const start = procStartTime(pid);
      return start ? [{ pid, start }] : [];
    });
    for (const id of ids) {
      try {
        process.kill(id.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    if (!(await waitFor(() => ids.every((id) => !isAlive(id)), 5_000))) {
      throw new FleetError(`host ${host.name}: ssh session processes survived SIGKILL`);
    }
  }

  async setLinkDown(host: FleetHost, down: boolean): Promise<void> {
    const s = this.stateOf(host);
    await ipBatch([`link set eth0 ${down ? 'down' : 'up'}`], s.netns);
  }

  async dropPackets(host: FleetHost, on: boolean): Promise<void> {
    const s = this.stateOf(host);
    s.shaping.drop = on;
    await applyShaping(this.linkEnds(s), s.shaping);
  }

  async setLatency(host: FleetHost, ms: number): Promise<void> {
    if (!Number.isFinite(ms) || ms < 0) throw new FleetError('latency must be a non-negative number of ms');
    const s = this.stateOf(host);
    const before = s.shaping.latencyMs;
    s.shaping.latencyMs = ms;
    try {
      await applyShaping(this.linkEnds(s), s.shaping);
    } catch (e) {
      s.shaping.latencyMs = before;
      throw e;
    }
  }

  private linkEnds(s: HostState): LinkEnd[] {
    return [{ netns: s.netns, dev: 'eth0' }, { netns: s.peerNetns, dev: s.peerIf! }];
  }

  // ---------- teardown ----------

  async destroyHost(host: FleetHost): Promise<void> {
    const s = this.states.get(host.name);
    if (!s || (s.host && s.host !== host)) return;
    await this.teardownHost(s);
  }

  /** Idempotent; tolerates resources that never got created. Private hosts of a bastion go first. */
  private teardownHost(s: HostState): Promise<void> {
    if (!s.teardown) s.teardown = this.doTeardownHost(s);
    return s.teardown;
  }

  private async doTeardownHost(s: HostState): Promise<void> {
    const errors: Error[] = [];
    const attempt = async (f: () => unknown) => {
      try {
        await f();
      } catch (e) {
        errors.push(e as Error);
      }
    };
    if (s.lan) {
      const dependents = [...this.states.values()].filter((d) => d.bastionName === s.name);
      await Promise.all(dependents.map((d) => attempt(() => this.teardownHost(d))));
    }
    await attempt(() => s.relay?.stop());
    await attempt(() => this.killHostProcesses(s));
    await attempt(async () => {
      const r = await run('ip', ['netns', 'del', s.netns], { allowFailure: true, timeoutMs: 15_000 });
      if (r.exitCode !== 0 && !/No such file|not found|does not exist/i.test(r.stderr)) {
        throw new FleetError(`ip netns del ${s.netns}: ${r.stderr.trim()}`);
      }
    });
    // The veth dies with the namespace, but asynchronously; delete it now so its name and subnet are free.
    if (s.peerIf && !s.peerNetns) {
      await attempt(() => run('ip', ['link', 'del', s.peerIf!], { allowFailure: true, timeoutMs: 10_000 }));
    }
    await attempt(() => fs.promises.rm(s.dir, { recursive: true, force: true, maxRetries: 3 }));
    for (const l of [...s.leases, ...(s.lan ? [s.lan.lease] : [])]) await attempt(() => releaseLease(l));
    this.states.delete(s.name);
    if (errors.length) throw new FleetTeardownError(errors);
  }

  /** SIGKILL to PID 1 ends the pid namespace (the kernel kills the rest); mounts go with the last process. */
  private async killHostProcesses(s: HostState): Promise<void> {
    const ids: ProcessIdentity[] = [];
    if (s.init) ids.push(s.init);
    // `unshare` (our child) reaps PID 1 and exits by itself; killing it would orphan PID 1 to this machine's init,
    // which may be slow to reap. Only kill it when PID 1 is unknown (a host that died half-started).
    const childPid = s.child?.pid;
    const childRunning = !!childPid && s.child!.exitCode === null && s.child!.signalCode === null;
    // Anything else left in the namespace (e.g. a half-started init whose pid we never learned).
    const r = await run('ip', ['netns', 'pids', s.netns], { allowFailure: true, timeoutMs: 10_000 });
    const pids = r.exitCode === 0 ? r.stdout.split(/\s+/).filter(Boolean).map(Number) : [];
    if (childRunning && !pids.includes(childPid)) pids.push(childPid);
    for (const p of pids) {
      if (p === childPid && s.init) continue;
      const start = procStartTime(p);
      if (start) ids.push({ pid: p, start });
    }
    if (childRunning && s.init) {
      const start = procStartTime(childPid);
      if (start) ids.push({ pid: childPid, start }); // waited for, not killed
    }
    for (const id of ids) {
      if (!isAlive(id) || (id.pid === childPid && s.init)) continue;
      try {
        process.kill(id.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    const gone = await waitFor(() => ids.every((id) => !isAlive(id)), 10_000);
    if (!gone) throw new FleetError(`host ${s.name}: processes survived SIGKILL`);
    if (s.childExited) {
      await Promise.race([s.childExited, new Promise((r) => setTimeout(r, 5_000).unref())]);
    }
  }

  destroy(): Promise<void> {
    if (!this.destroying) this.destroying = this.doDestroy();
    return this.destroying;
  }

  private async doDestroy(): Promise<void> {
    const errors: Error[] = [];
    const all = [...this.states.values()];
    const order = [all.filter((s) => s.bastionName), all.filter((s) => !s.bastionName)];
    for (const group of order) {
      const results = await Promise.allSettled(group.map((s) => this.teardownHost(s)));
      for (const r of results) if (r.status === 'rejected') errors.push(r.reason as Error);
    }
    // Hosts still being created notice the teardown at their next step and clean up after themselves.
    await Promise.allSettled([...this.inFlight]);
    try {
      await fs.promises.rm(this.runDir, { recursive: true, force: true, maxRetries: 3 });
    } catch (e) {
      errors.push(e as Error);
    }
    liveFleets.delete(this);
    if (errors.length) throw new FleetTeardownError(errors.flatMap((e) => (e instanceof FleetTeardownError ? e.causes : [e])));
  }

  /** Last resort when the process exits without destroy(): synchronous, best effort. */
  emergencyTeardown(): void {
    for (const s of this.states.values()) {
      for (const id of [s.init, s.child?.pid ? { pid: s.child.pid, start: procStartTime(s.child.pid) ?? '' } : undefined]) {
        if (id && isAlive(id)) {
          try {
            process.kill(id.pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
      s.relay?.stop().catch(() => undefined);
      try {
        execFileSync('ip', ['netns', 'del', s.netns], { stdio: 'ignore' });
      } catch {
        /* best effort */
      }
      if (s.peerIf && !s.peerNetns) {
        try {
          execFileSync('ip', ['link', 'del', s.peerIf], { stdio: 'ignore' });
        } catch {
          /* best effort */
        }
      }
      for (const l of [...s.leases, ...(s.lan ? [s.lan.lease] : [])]) releaseLease(l);
    }
    try {
      fs.rmSync(this.runDir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

export async function createFleet(opts: FleetOptions = {}): Promise<Fleet> {
  const baseDir = path.resolve(opts.baseDir ?? defaultBaseDir());
  const reason = fleetUnsupportedReason(baseDir);
  if (reason) throw new FleetUnsupportedError(reason);
  const runId = opts.runId ?? randomBytes(3).toString('hex');
  if (!RUN_ID_PATTERN.test(runId)) throw new FleetError(`runId must match [a-z0-9]{1,12}, got "${runId}"`);
  const runRoot = opts.runRoot ?? os.tmpdir();
  await ensureFleetRangeStaysLocal();
  if (opts.cleanupStale !== false) await cleanupStale(NETNS_PREFIX, { runRoot }).catch(() => undefined);
  const runDir = path.join(runRoot, `${RUN_DIR_PREFIX}${runId}`);
  try {
    fs.mkdirSync(runDir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new FleetError(`fleet run ${runId} already exists (${runDir})`);
    throw e;
  }
  fs.writeFileSync(path.join(runDir, 'owner.json'), JSON.stringify(selfIdentity()));
  return new FleetImpl(runId, runDir, baseDir, opts.startTimeoutMs ?? 30_000);
}


/** A file inside a host's root, reached from the controller through its init process's root link. */
function hostRootPath(initPid: number, relative: string): string {
  return path.join('/proc', String(initPid), 'root', relative);
}
