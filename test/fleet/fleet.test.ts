import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Client } from 'ssh2';
import {
  cleanupStale,
  createFleet,
  defaultBaseDir,
  Fleet,
  FleetError,
  FleetHost,
  FleetHostStartError,
  fleetUnsupportedReason,
  FleetUnsupportedError,
} from './index';
import { leaseDir } from './leases';
import { run } from './run';

// Real namespaces, real sshd: needs root on Linux and the cached base image (deploy/dev/fleet-base).
const unsupported = fleetUnsupportedReason();
if (unsupported) {
  console.warn(`[fleet.test] SKIPPED: ${unsupported}`);
}
const describeFleet = unsupported ? describe.skip : describe;

/** A password with every character class that tends to break quoting. */
const NASTY_PASSWORD = `p@ss wörd 'q' "dq" $HOME \`id\` ;|&<>*?[]{}()!#~\\ :colon: 密码€`;

/** TCP connect from inside a host: 'open', or the failure (refused / unreachable / timeout). */
async function probe(fleet: Fleet, host: FleetHost, ip: string, port: number): Promise<string> {
  const py =
    'import socket,sys\n' +
    's=socket.socket(); s.settimeout(3)\n' +
    'try:\n s.connect((sys.argv[1], int(sys.argv[2]))); print("open")\n' +
    'except socket.timeout: print("timeout")\n' +
    'except OSError as e: print("error:" + (e.strerror or str(e)))\n';
  const r = await fleet.exec(host, `python3 -c '${py}' ${ip} ${port}`);
  expect(r.exitCode).toBe(0);
  return r.stdout.trim();
}

/** TCP connect from the controller (root ns): 'open', 'timeout' or the error code. */
function controllerProbe(ip: string, port: number, timeoutMs = 3_000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: ip, port });
    const t = setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve('open');
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve(e.code ?? e.message);
    });
  });
}

interface SshResult {
  stdout: string;
  hostKeySha256: string;
}

/** Password login with ssh2, runs one command. The host key is captured, not pinned (tests compare it). */
function sshRun(host: { address: string; sshPort: number }, user: string, password: string, command: string): Promise<SshResult> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    let fp = '';
    c.on('error', reject);
    c.on('ready', () => {
      c.exec(command, (err, stream) => {
        if (err) return reject(err);
        let out = '';
        stream.on('error', reject);
        stream.on('data', (d: Buffer) => (out += d.toString('utf8')));
        stream.stderr.on('data', () => undefined);
        stream.on('close', () => {
          c.end();
          resolve({ stdout: out, hostKeySha256: fp });
        });
      });
    });
    c.connect({
      host: host.address,
      port: host.sshPort,
      username: user,
      password,
      readyTimeout: 10_000,
      hostVerifier: (key: Buffer) => {
        fp = 'SHA256:' + createHash('sha256').update(key).digest('base64').replace(/=+$/, '');
        return true;
      },
    });
  });
}

function connectSsh(host: FleetHost): Promise<Client> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.once('error', reject);
    c.once('ready', () => {
      c.removeListener('error', reject);
      c.on('error', () => undefined);
      resolve(c);
    });
    c.connect({ host: host.address, port: host.sshPort, username: host.bootstrapUser, password: host.bootstrapPassword, readyTimeout: 10_000, hostVerifier: () => true });
  });
}

async function netnsNames(): Promise<string[]> {
  const r = await run('ip', ['netns', 'list']);
  return r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
}

async function linkNames(): Promise<string[]> {
  const r = await run('ip', ['-o', 'link', 'show']);
  return r.stdout.split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0]).filter((n): n is string => !!n);
}

/** Every process's mount table that mentions `needle` (host mounts live in private mount namespaces). */
function mountsMentioning(needle: string): string[] {
  const hits: string[] = [];
  for (const p of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (fs.readFileSync(`/proc/${p}/mountinfo`, 'utf8').includes(needle)) hits.push(p);
    } catch {
      /* process gone */
    }
  }
  return hits;
}

function netnsInode(name: string): string {
  return `net:[${fs.statSync(`/run/netns/${name}`).ino}]`;
}

function startTimeOf(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[19];
  } catch {
    return undefined;
  }
}

function processesInNetns(ns: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((p) => {
      try {
        return fs.readlinkSync(`/proc/${p}/ns/net`) === ns;
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function poll<T>(f: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describeFleet('test fleet: isolation and topologies', () => {
  let fleet: Fleet;
  let influx: net.Server;
  let influxPort: number;
  let a: FleetHost, b: FleetHost, ri: FleetHost, bastion: FleetHost, priv: FleetHost;

  beforeAll(async () => {
    // Stands in for InfluxDB: loopback only in the root namespace.
    influx = net.createServer((s) => {
      s.on('error', () => undefined);
      s.end('influx-ok\n');
    });
    await new Promise<void>((r) => influx.listen(0, '127.0.0.1', r));
    influxPort = (influx.address() as net.AddressInfo).port;

    fleet = await createFleet();
    [a, b, ri, bastion] = await Promise.all([
      fleet.addHost({ name: 'a', topology: 'direct' }),
      fleet.addHost({
        name: 'b',
        topology: 'direct',
        sshPort: 2222,
        bootstrapUser: 'ops',
        bootstrapPassword: NASTY_PASSWORD,
        clientAliveIntervalSec: 7,
        clientAliveCountMax: 2,
      }),
      fleet.addHost({ name: 'ri', topology: 'reachable-influx', influxTarget: { host: '127.0.0.1', port: influxPort } }),
      fleet.addHost({ name: 'bastion', topology: 'bastion' }),
    ]);
    priv = await fleet.addHost({ name: 'priv', topology: 'private', bastion });
    console.log(`[fleet.test] host startup ms: ${fleet.hosts.map((h) => `${h.name}=${h.startupMs}`).join(' ')}`);
  });

  afterAll(async () => {
    await fleet?.destroy();
    await new Promise((r) => influx?.close(r));
  });

  it('keeps users and files private to each host', async () => {
    const created = await fleet.exec(a, 'useradd --create-home fleetprobe && echo marker > /etc/fleet-marker && id -u fleetprobe');
    expect(created.exitCode).toBe(0);
    expect((await fleet.exec(a, 'id fleetprobe')).exitCode).toBe(0);
    expect((await fleet.exec(b, 'id fleetprobe')).exitCode).not.toBe(0);
    expect((await fleet.exec(b, 'test -e /etc/fleet-marker')).exitCode).not.toBe(0);
    // The shared base image is untouched (the overlay's upper dir took the write).
    expect(fs.existsSync(path.join(defaultBaseDir(), 'etc/fleet-marker'))).toBe(false);
  });

  it('gives every host its own hostname, /etc/hosts entry and pid namespace', async () => {
    const names = await Promise.all([a, b, ri, bastion, priv].map(async (h) => (await fleet.exec(h, 'hostname')).stdout.trim()));
    expect(names).toEqual(['a', 'b', 'ri', 'bastion', 'priv']);
    expect((await fleet.exec(b, 'getent hosts b')).stdout).toContain(b.address);
    // PID 1 inside is the fleet init, not this machine's init.
    expect((await fleet.exec(a, 'cat /proc/1/cmdline | tr "\\0" " "')).stdout).toContain('python3');
    const sshdCount = await fleet.exec(a, 'pgrep -c -x sshd');
    expect(Number(sshdCount.stdout.trim())).toBe(1);
  });

  it('feeds exec input on stdin and reports exit codes', async () => {
    const r = await fleet.exec(a, 'cat; exit 3', { input: 'hello\n' });
    expect(r).toEqual({ stdout: 'hello\n', stderr: '', exitCode: 3 });
  });

  it('gives each host a distinct fresh host key, and reports the one sshd presents', async () => {
    const fps = await Promise.all([a, b, ri].map((h) => fleet.hostKeySha256(h)));
    expect(new Set(fps).size).toBe(3);
    for (const fp of fps) expect(fp).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    const seen = await sshRun(a, a.bootstrapUser, a.bootstrapPassword, 'true');
    expect(seen.hostKeySha256).toBe(fps[0]);
    const pub = (await fleet.exec(a, 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub')).stdout;
    expect(pub).toContain(fps[0]);
  });

  it('runs sshd on a non-22 port and accepts a bootstrap password full of shell metacharacters', async () => {
    const r = await sshRun(b, 'ops', NASTY_PASSWORD, 'hostname; id -nG');
    expect(r.stdout).toMatch(/^b\n/);
    expect(r.stdout.split('\n')[1].split(' ')).toContain('sudo');
    await expect(sshRun(b, 'ops', NASTY_PASSWORD + 'x', 'true')).rejects.toThrow(/authentication/i);
    expect(await controllerProbe(b.address, 22)).toBe('ECONNREFUSED');
    // sudo works with the same password (fed on stdin, never argv).
    const sudo = await fleet.exec(b, `su ops -c 'sudo -S -p "" id -u'`, { input: NASTY_PASSWORD + '\n' });
    expect(sudo.stdout.trim()).toBe('0');
  });

  it('configures sshd as asked: port, keepalives, no root login, password auth, forwarding', async () => {
    const t = (await fleet.exec(b, 'sshd -T')).stdout;
    for (const line of ['port 2222', 'clientaliveinterval 7', 'clientalivecountmax 2', 'permitrootlogin no',
      'passwordauthentication yes', 'allowtcpforwarding yes']) {
      expect(t.split('\n')).toContain(line);
    }
  });

  it('does not let a direct host reach InfluxDB, the gateway or anything beyond', async () => {
    expect(await probe(fleet, a, '127.0.0.1', influxPort)).toMatch(/^error:.*refused/i);
    expect(await probe(fleet, a, a.gateway, influxPort)).toMatch(/^error:.*refused/i);
    expect(await probe(fleet, a, '10.213.255.254', 80)).toMatch(/^error:.*unreachable/i);
    expect((await fleet.exec(a, 'ip route show default')).stdout.trim()).toBe('');
    // The controller does reach the host's sshd.
    expect(await controllerProbe(a.address, 22)).toBe('open');
  });

  it('lets a reachable-influx host reach InfluxDB through influxUrl only', async () => {
    const u = new URL(ri.influxUrl!);
    expect(u.hostname).toBe(ri.gateway);
    const r = await fleet.exec(
      ri,
      `python3 -c 'import socket; s=socket.create_connection(("${u.hostname}", ${u.port}), 3); print(s.recv(100).decode().strip())'`,
    );
    expect(r.stdout.trim()).toBe('influx-ok');
    expect(await probe(fleet, ri, '127.0.0.1', influxPort)).toMatch(/^error:/);
    // Another host's relay address is not routable from a direct host.
    expect(await probe(fleet, a, u.hostname, Number(u.port))).toMatch(/^error:.*unreachable/i);
  });

  it('hides a private host from the controller but not from its bastion', async () => {
    expect(priv.proxyAddress).toBeDefined();
    expect(priv.bastion).toBe(bastion);
    expect(['ENETUNREACH', 'EHOSTUNREACH', 'timeout']).toContain(await controllerProbe(priv.address, 22, 2_000));
    expect(await probe(fleet, bastion, priv.address, 22)).toBe('open');
    // The data path back: the private host reaches the bastion's private side (where remote forwards bind)...
    expect((await fleet.exec(bastion, 'ip -4 -o addr show br0')).stdout).toContain(priv.proxyAddress);
    expect(await probe(fleet, priv, priv.proxyAddress!, 22)).toBe('open');
    // ...and nothing else.
    expect(await probe(fleet, priv, bastion.gateway, 22)).toMatch(/^error:.*unreachable/i);
    expect(await probe(fleet, priv, '127.0.0.1', influxPort)).toMatch(/^error:.*refused/i);
    // The bastion allows clients to choose the bind address of remote forwards; plain hosts do not.
    expect((await fleet.exec(bastion, 'sshd -T | grep -i ^gatewayports')).stdout.trim()).toBe('gatewayports clientspecified');
    expect((await fleet.exec(a, 'sshd -T | grep -i ^gatewayports')).stdout.trim()).toBe('gatewayports no');
  });

  it('swaps host keys so that sshd presents the new one', async () => {
    const before = await fleet.hostKeySha256(ri);
    await fleet.regenerateHostKeys(ri);
    const after = await fleet.hostKeySha256(ri);
    expect(after).not.toBe(before);
    expect((await sshRun(ri, ri.bootstrapUser, ri.bootstrapPassword, 'true')).hostKeySha256).toBe(after);
  });

  it('kills ssh sessions but keeps the listener', async () => {
    const c = await connectSsh(a);
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    await fleet.killSshSessions(a, a.bootstrapUser);
    await closed;
    expect((await sshRun(a, a.bootstrapUser, a.bootstrapPassword, 'echo still-up')).stdout.trim()).toBe('still-up');
  });

  it('takes a link down and up again', async () => {
    await fleet.setLinkDown(a, true);
    expect((await fleet.exec(a, 'ip -br link show eth0')).stdout).toMatch(/DOWN/);
    expect(await controllerProbe(a.address, 22, 2_000)).not.toBe('open');
    await fleet.setLinkDown(a, false);
    expect(await poll(() => controllerProbe(a.address, 22), (v) => v === 'open')).toBe('open');
  });

  it('drops packets silently and restores them', async () => {
    await fleet.dropPackets(ri, true);
    // Silent: no refusal, no unreachable error, just no answer.
    expect(await controllerProbe(ri.address, 22, 1_500)).toBe('timeout');
    const qdisc = await run('tc', ['-n', ri.netns, '-s', 'qdisc', 'show', 'dev', 'eth0']);
    expect(qdisc.stdout).toMatch(/netem|tbf/);
    await fleet.dropPackets(ri, false);
    expect(await poll(() => controllerProbe(ri.address, 22), (v) => v === 'open')).toBe('open');
  });

  it('adds latency with netem, or says clearly that the kernel lacks it', async () => {
    try {
      await fleet.setLatency(a, 50);
    } catch (e) {
      expect(e).toBeInstanceOf(FleetUnsupportedError);
      expect((e as Error).message).toMatch(/netem/);
      return;
    }
    expect((await run('tc', ['-n', a.netns, 'qdisc', 'show', 'dev', 'eth0'])).stdout).toMatch(/netem.*delay 50ms/);
    await fleet.setLatency(a, 0);
    expect((await run('tc', ['-n', a.netns, 'qdisc', 'show', 'dev', 'eth0'])).stdout).not.toMatch(/netem/);
  });

  it('rejects bad host options without creating anything', async () => {
    await expect(fleet.addHost({ name: 'a', topology: 'direct' })).rejects.toThrow(FleetError);
    await expect(fleet.addHost({ name: 'x1', topology: 'private' })).rejects.toThrow(/bastion/);
    await expect(fleet.addHost({ name: 'x2', topology: 'direct', bootstrapPassword: 'two\nlines' })).rejects.toThrow(/line breaks/);
    await expect(fleet.addHost({ name: 'x3', topology: 'reachable-influx' })).rejects.toThrow(/influxTarget/);
    expect((await netnsNames()).filter((n) => /^ao-.*-x\d$/.test(n))).toEqual([]);
  });
});

describeFleet('test fleet: teardown', () => {
  it('leaves no namespace, veth, mount, process, relay or run dir behind, even after a failed addHost', async () => {
    const listener = net.createServer((s) => s.end());
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    const port = (listener.address() as net.AddressInfo).port;
    const fleet = await createFleet();
    try {
      const [d, r, bas] = await Promise.all([
        fleet.addHost({ name: 'd', topology: 'direct' }),
        fleet.addHost({ name: 'r', topology: 'reachable-influx', influxTarget: { host: '127.0.0.1', port } }),
        fleet.addHost({ name: 'bas', topology: 'bastion' }),
      ]);
      const p = await fleet.addHost({ name: 'p', topology: 'private', bastion: bas });
      const hosts = [d, r, bas, p];
      const inodes = hosts.map((h) => netnsInode(h.netns));
      // Namespace inodes are recycled once freed (other fleets run in parallel): what must be gone are the
      // processes that lived in our namespaces, identified by pid and start time.
      const ourProcesses = inodes.flatMap((ino) => processesInNetns(ino)).map((pid) => ({ pid, start: startTimeOf(pid) }));
      expect(ourProcesses.length).toBeGreaterThan(0);
      const rootLinks = (await linkNames()).filter((n) => /^aof\d+$/.test(n));
      const ours = [d, r, bas].map((h) => {
        const last = Number(h.gateway.split('.')[3]);
        const third = Number(h.gateway.split('.')[2]);
        return `aof${(third * 256 + last - 1) / 4}`;
      });
      for (const l of ours) expect(rootLinks).toContain(l);
      expect(mountsMentioning(fleet.runDir).length).toBeGreaterThan(0);

      // A failure midway through addHost (init runs, but useradd refuses an existing system user) cleans up itself.
      await expect(fleet.addHost({ name: 'broken', topology: 'direct', bootstrapUser: 'daemon' })).rejects.toThrow(
        FleetHostStartError,
      );
      expect(await netnsNames()).not.toContain(`ao-${fleet.runId}-broken`);
      // And a host still being created when the fleet is destroyed.
      const inFlight = fleet.addHost({ name: 'late', topology: 'direct' });
      inFlight.catch(() => undefined);
      const relayUrl = new URL(r.influxUrl!);

      await fleet.destroy();
      await expect(inFlight).rejects.toThrow(FleetError);
      await fleet.destroy(); // idempotent

      expect((await netnsNames()).filter((n) => n.startsWith(`ao-${fleet.runId}-`))).toEqual([]);
      expect(await poll(linkNames, (names) => ours.every((l) => !names.includes(l)))).toEqual(
        expect.not.arrayContaining(ours),
      );
      expect(mountsMentioning(fleet.runDir)).toEqual([]);
      for (const h of hosts) expect(fs.existsSync(`/proc/${h.initPid}`)).toBe(false);
      expect(ourProcesses.filter((p) => p.start !== undefined && startTimeOf(p.pid) === p.start)).toEqual([]);
      expect(fs.existsSync(fleet.runDir)).toBe(false);
      expect(await controllerProbe(relayUrl.hostname, Number(relayUrl.port), 1_000)).not.toBe('open');
      const leases = fs.existsSync(leaseDir()) ? fs.readdirSync(leaseDir()) : [];
      for (const f of leases) expect(fs.readFileSync(path.join(leaseDir(), f), 'utf8')).not.toContain(`"runId":"${fleet.runId}"`);
    } finally {
      await fleet.destroy();
      await new Promise((r) => listener.close(r));
    }
  });

  it('cleans up what a crashed run left behind, but not live fleets', async () => {
    const live = await createFleet();
    try {
      const survivor = await live.addHost({ name: 'keep', topology: 'direct' });
      // A crashed run: its namespace with a process in it, its run dir and a lease, all owned by a dead process.
      const deadOwner = { pid: 2 ** 22 + 1, start: '1' };
      const runId = 'crash' + Math.floor(Math.random() * 1e6);
      const ns = `ao-${runId}-h`;
      await run('ip', ['netns', 'add', ns]);
      const sleeper = await run('sh', ['-c', `ip netns exec ${ns} sleep 600 >/dev/null 2>&1 & echo $!`]);
      const sleeperPid = Number(sleeper.stdout.trim());
      const runDir = path.join(path.dirname(live.runDir), `ao-fleet-${runId}`);
      fs.mkdirSync(runDir);
      fs.writeFileSync(path.join(runDir, 'owner.json'), JSON.stringify(deadOwner));
      fs.mkdirSync(leaseDir(), { recursive: true });
      const leaseFile = path.join(leaseDir(), 'lan-127.json');
      const hadLease = fs.existsSync(leaseFile);
      if (!hadLease) fs.writeFileSync(leaseFile, JSON.stringify({ kind: 'lan', index: 127, owner: deadOwner, runId }));

      const removed = await cleanupStale();
      expect(removed).toContain(ns);
      expect(await netnsNames()).not.toContain(ns);
      expect(await poll(() => fs.existsSync(`/proc/${sleeperPid}`), (v) => !v)).toBe(false);
      expect(fs.existsSync(runDir)).toBe(false);
      if (!hadLease) expect(fs.existsSync(leaseFile)).toBe(false);
      // The live fleet is untouched.
      expect(await netnsNames()).toContain(survivor.netns);
      expect((await live.exec(survivor, 'hostname')).stdout.trim()).toBe('keep');
    } finally {
      await live.destroy();
    }
  });
});
