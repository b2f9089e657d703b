import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createAnsibleActivities } from '../../activities/ansible';
import { deployDir, runPlaybook } from '../../activities/ansible/run-playbook';
import type { ActivityDeps } from '../../activities/deps';
import { scanHostKey } from '../../activities/ssh/dialer';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { sealSecret, unsealSecret } from '../../lib/sealed-secret';
import type { SshTarget } from '../../workflows/contracts';
import { createFleet, fleetUnsupportedReason, type Fleet, type FleetHost } from '../fleet';
import { eventually, testStack } from '../support/stack';
import { failureOf } from '../support/failures';
import { generateEd25519 } from '../../activities/ssh/keys';

// The real playbook (deploy/ansible) run by the activity against fleet hosts: Debian with sshd as PID 1 and
// no init system, so the role takes its supervised path. The systemd unit is rendered and checked with
// systemd-analyze on this machine.

const unsupported = fleetUnsupportedReason();
const describeFleet = unsupported ? describe.skip : describe;
if (unsupported) console.warn(`skipping Ansible activity tests: ${unsupported}`);

const execFileAsync = promisify(execFile);
const keyring = Keyring.forTests('ansible-activities');
// InfluxDB 1.8 runs with auth off, so any token is accepted; a unique one can be searched for everywhere.
const TOKEN = `ao-test-token-${randomBytes(8).toString('hex')}`;

function makeDeps(): ActivityDeps {
  const influx = testStack().influx;
  return {
    keyring,
    log: createLogger('test-ansible'),
    influx: { ...influx, token: TOKEN },
    telegrafArtifact: testStack().telegrafPath,
  };
}

async function mustExec(fleet: Fleet, host: FleetHost, command: string, input?: string): Promise<string> {
  const r = await fleet.exec(host, command, { input, timeoutMs: 60_000 });
  if (r.exitCode !== 0) throw new Error(`${command.slice(0, 80)} on ${host.name} failed: ${r.stderr}`);
  return r.stdout;
}

/** A key-only sudo user, made here (not by the cloudroot activity) so these tests stand alone. */
async function makeServiceUser(fleet: Fleet, host: FleetHost, via?: SshTarget): Promise<SshTarget> {
  const keys = generateEd25519({ comment: 'ansible-test' });
  await mustExec(
    fleet,
    host,
    [
      'set -e',
      'id cloudroot >/dev/null 2>&1 || useradd -m -s /bin/bash cloudroot',
      'install -d -m 700 -o cloudroot -g cloudroot /home/cloudroot/.ssh',
      'cat > /home/cloudroot/.ssh/authorized_keys',
      'chown cloudroot:cloudroot /home/cloudroot/.ssh/authorized_keys && chmod 600 /home/cloudroot/.ssh/authorized_keys',
      "echo 'cloudroot ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/cloudroot.tmp",
      'visudo -cf /etc/sudoers.d/cloudroot.tmp >/dev/null && chmod 440 /etc/sudoers.d/cloudroot.tmp && mv /etc/sudoers.d/cloudroot.tmp /etc/sudoers.d/cloudroot',
      // sudo wants to resolve the host name
      'grep -q "$(hostname)" /etc/hosts || echo "127.0.1.1 $(hostname)" >> /etc/hosts',
    ].join('\n'),
    keys.public + '\n',
  );
  return {
    address: host.address,
    port: host.sshPort,
    hostKeySha256: await fleet.hostKeySha256(host),
    credential: { username: 'cloudroot', privateKey: sealSecret(keyring, keys.private) },
    ...(via ? { via } : {}),
  };
}

/** Every distinct argv on this machine while `during` runs (the controller side: ansible-playbook, ssh, python). */
async function controllerArgvDuring<T>(during: Promise<T>): Promise<{ result: T; argv: string[] }> {
  const seen = new Set<string>();
  let done = false;
  const scan = (async () => {
    while (!done) {
      for (const p of readdirSync('/proc')) {
        if (!/^\d+$/.test(p)) continue;
        try {
          seen.add(readFileSync(`/proc/${p}/cmdline`).toString('utf8').replace(/\0/g, ' '));
        } catch {
          // gone
        }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try {
    return { result: await during, argv: [...seen] };
  } finally {
    done = true;
    await scan;
  }
}


async function influxCount(hostId: string, sinceMs: number): Promise<number> {
  const { url, bucket } = testStack().influx;
  const db = bucket.split('/')[0];
  const q = `SELECT count("usage_idle") FROM "cpu" WHERE "host_id" = '${hostId}' AND time >= ${sinceMs}ms`;
  const res = await fetch(`${url}/query?db=${encodeURIComponent(db)}&q=${encodeURIComponent(q)}`);
  const body = (await res.json()) as { results?: Array<{ series?: Array<{ values: Array<[string, number]> }> }> };
  return body.results?.[0]?.series?.[0]?.values?.[0]?.[1] ?? 0;
}

describeFleet('Ansible activities on fleet hosts', () => {
  let fleet: Fleet;
  let reach: FleetHost;
  let bastion: FleetHost;
  let priv: FleetHost;
  let target: SshTarget;
  const deps = () => makeDeps();

  beforeAll(async () => {
    const influx = new URL(testStack().influx.url);
    fleet = await createFleet();
    [reach, bastion] = await Promise.all([
      fleet.addHost({ name: 'ansr1', topology: 'reachable-influx', influxTarget: { host: influx.hostname, port: Number(influx.port) } }),
      fleet.addHost({ name: 'ansb1', topology: 'bastion' }),
    ]);
    priv = await fleet.addHost({ name: 'ansp1', topology: 'private', bastion });
    target = await makeServiceUser(fleet, reach);
  });

  afterAll(async () => {
    await fleet?.destroy();
  });

  it('installs Telegraf (artifact mode, supervised) and its data reaches InfluxDB', async () => {
    const hostId = `ansible-${reach.name}-${Date.now().toString(36)}`;
    const activities = createAnsibleActivities(deps());
    const before = Date.now();
    const { result: summary, argv } = await controllerArgvDuring(
      activities.installAgent({
        hostId,
        target,
        agent: { mode: 'artifact', interval: '2s' },
        outputUrl: reach.influxUrl!,
        labels: { env: 'test', team: 'infra' },
      }),
    );
    expect(summary).toMatchObject({ failed: 0, unreachable: 0, telegrafVersion: '1.39.3', outputUrl: reach.influxUrl });
    expect(summary.changed).toBeGreaterThan(0);
    expect(summary.agentStartedAtMs).toBeGreaterThanOrEqual(before - 2_000); // same kernel clock; slack for mtime granularity
    expect(summary.agentStartedAtMs).toBeLessThanOrEqual(Date.now());
    expect(JSON.stringify(summary)).not.toContain(TOKEN);

    // The controller ran ansible-playbook (we saw it), and never with the token or the key on a command line.
    expect(argv.some((a) => a.includes('ansible-playbook') && a.includes('onboard.yml'))).toBe(true);
    expect(argv.filter((a) => a.includes(TOKEN))).toEqual([]);
    expect(argv.filter((a) => a.includes('PRIVATE KEY'))).toEqual([]);

    // On the host: Telegraf runs as its own user under the supervisor, configured with the host id.
    const ps = await mustExec(fleet, reach, 'ps -eo user=,args=');
    expect(ps).toMatch(/^telegraf\s+\/usr\/local\/bin\/telegraf --config \/etc\/telegraf\/telegraf\.conf/m);
    expect(ps).toMatch(/telegraf-supervisor/);
    const conf = await mustExec(fleet, reach, 'cat /etc/telegraf/telegraf.conf');
    expect(conf).toContain(`host_id = "${hostId}"`);
    expect(conf).toContain('"env" = "test"');
    expect(conf).toContain(`urls = ["${reach.influxUrl}"]`);
    expect(conf).toContain('token = "${INFLUX_TOKEN}"');
    expect(conf).not.toContain(TOKEN);
    expect((await mustExec(fleet, reach, 'stat -c "%a %U" /etc/default/telegraf')).trim()).toBe('600 root');
    const hostArgv = await mustExec(fleet, reach, 'for f in /proc/[0-9]*/cmdline; do tr "\\0" " " < "$f"; echo; done 2>/dev/null');
    expect(hostArgv).not.toContain(TOKEN);
    expect(await mustExec(fleet, reach, 'cat /etc/ssh/sshd_config.d/50-agent-onboarding.conf')).toMatch(/ClientAliveInterval 15\nClientAliveCountMax 3/);

    // Data arrives, tagged with the host id, newer than the start the summary reported.
    const points = await eventually(async () => (await influxCount(hostId, summary.agentStartedAtMs)) || undefined, 60_000, 500);
    expect(points).toBeGreaterThan(0);
  });

  it('is idempotent: a second run changes nothing and keeps the same Telegraf process', async () => {
    const activities = createAnsibleActivities(deps());
    const pidBefore = (await mustExec(fleet, reach, 'cat /run/telegraf/telegraf.pid')).trim();
    const hostId = (await mustExec(fleet, reach, "sed -n 's/^  host_id = \"\\(.*\\)\"$/\\1/p' /etc/telegraf/telegraf.conf")).trim();
    const summary = await activities.installAgent({
      hostId,
      target,
      agent: { mode: 'artifact', interval: '2s' },
      outputUrl: reach.influxUrl!,
      labels: { env: 'test', team: 'infra' },
    });
    expect(summary.changed).toBe(0);
    expect(summary.failed).toBe(0);
    expect((await mustExec(fleet, reach, 'cat /run/telegraf/telegraf.pid')).trim()).toBe(pidBefore);
  });

  it('restarts Telegraf with the new config when an input changes', async () => {
    const activities = createAnsibleActivities(deps());
    const pidBefore = (await mustExec(fleet, reach, 'cat /run/telegraf/telegraf.pid')).trim();
    const summary = await activities.installAgent({
      hostId: 'ansible-renamed',
      target,
      agent: { mode: 'artifact', interval: '2s' },
      outputUrl: reach.influxUrl!,
    });
    expect(summary.changed).toBeGreaterThan(0);
    const pidAfter = (await mustExec(fleet, reach, 'cat /run/telegraf/telegraf.pid')).trim();
    expect(pidAfter).not.toBe(pidBefore);
    expect(await mustExec(fleet, reach, `tr '\\0' ' ' < /proc/${pidAfter}/cmdline`)).toContain('/usr/local/bin/telegraf');
    expect(await mustExec(fleet, reach, 'cat /etc/telegraf/telegraf.conf')).toContain('host_id = "ansible-renamed"');
  });

  /** The bastion as a jump host: its bootstrap login, its key pinned. */
  async function bastionTarget(): Promise<SshTarget> {
    return {
      address: bastion.address,
      port: bastion.sshPort,
      hostKeySha256: await fleet.hostKeySha256(bastion),
      credential: { username: bastion.bootstrapUser, password: sealSecret(keyring, bastion.bootstrapPassword) },
    };
  }

  it('reaches a private host through its bastion with the pinned key', async () => {
    const via = await bastionTarget();
    const privTarget = await makeServiceUser(fleet, priv, via);
    const activities = createAnsibleActivities(deps());
    const summary = await activities.installAgent({
      hostId: 'ansible-private',
      target: privTarget,
      agent: { mode: 'artifact' },
      // The host cannot reach InfluxDB: in production this is the tunnel's local end.
      outputUrl: 'http://127.0.0.1:18086',
    });
    expect(summary).toMatchObject({ failed: 0, unreachable: 0, telegrafVersion: '1.39.3' });
    expect(await mustExec(fleet, priv, 'cat /etc/telegraf/telegraf.conf')).toContain('host_id = "ansible-private"');

    // A different pinned key for the private host stops the run before Ansible starts.
    const wrongPin = { ...privTarget, hostKeySha256: await fleet.hostKeySha256(bastion) };
    const err = await failureOf(activities.installAgent({ hostId: 'x', target: wrongPin, agent: { mode: 'artifact' }, outputUrl: 'http://127.0.0.1:1' }));
    expect(err.type).toBe('HostKeyMismatch');
  });

  it('names the failed task (AnsibleFailed) and unreachable hosts (HostUnreachable)', async () => {
    const activities = createAnsibleActivities(deps());
    // A file where the role wants its config directory.
    await mustExec(fleet, priv, 'rm -rf /etc/telegraf && touch /etc/telegraf');
    const via = await bastionTarget();
    const privTarget = await makeServiceUser(fleet, priv, via);
    const failed = await failureOf(
      activities.installAgent({ hostId: 'ansible-private', target: privTarget, agent: { mode: 'artifact' }, outputUrl: 'http://127.0.0.1:18086' }),
    );
    expect(`${failed.type}: ${failed.message}`).toMatch(/^AnsibleFailed: /);
    expect(failed.nonRetryable).toBe(true);
    expect(failed.message).toContain('Create the configuration directory');
    expect(failed.message.length).toBeLessThan(600);
    expect(failed.message).not.toContain(TOKEN);
    await mustExec(fleet, priv, 'rm -f /etc/telegraf');

    const closed = await failureOf(
      activities.installAgent({ hostId: 'x', target: { ...target, port: 1 }, agent: { mode: 'artifact' }, outputUrl: 'http://127.0.0.1:1' }),
    );
    expect(closed.type).toBe('HostUnreachable');
  });

  it('kills the whole process group when the run is cancelled, and leaves no temp dir', async () => {
    const scanned = await scanHostKey(target, { keyring });
    const ac = new AbortController();
    let pid = 0;
    const run = runPlaybook({
      host: {
        name: 'target',
        address: target.address,
        port: target.port,
        user: 'cloudroot',
        privateKey: unsealSecret(keyring, target.credential.privateKey!),
        hostPublicKey: scanned.hostPublicKey,
      },
      extraVars: { telegraf_state: 'absent' },
      onSpawn: (p) => (pid = p),
      signal: ac.signal,
    });
    // Cancel once Ansible has its ssh children running (they are in its process group).
    await eventually(async () => {
      if (!pid) return false;
      const { stdout } = await execFileAsync('ps', ['-eo', 'pgid=,comm=']);
      return stdout.split('\n').some((l) => l.trim().split(/\s+/)[0] === String(pid) && /^ssh$/.test(l.trim().split(/\s+/)[1] ?? ''));
    }, 60_000, 50);
    // This run's own dir (other suites running in parallel make theirs): the one whose owner record names its group.
    const ownDir = readdirSync(os.tmpdir())
      .filter((d) => d.startsWith('ao-ansible-'))
      .find((d) => {
        try {
          return JSON.parse(readFileSync(path.join(os.tmpdir(), d, 'owner.json'), 'utf8')).pgid === pid;
        } catch {
          return false;
        }
      });
    expect(ownDir).toBeDefined();
    ac.abort();
    const result = await run;
    expect(result.cancelled).toBe(true);
    expect(result.exitCode).not.toBe(0);
    const { stdout } = await execFileAsync('ps', ['-eo', 'pgid=']);
    expect(stdout.split('\n').map((s) => s.trim())).not.toContain(String(pid));
    expect(existsSync(path.join(os.tmpdir(), ownDir!))).toBe(false);
  });

  it('uninstalls everything it installed', async () => {
    const activities = createAnsibleActivities(deps());
    const res = await activities.uninstallAgent({ hostId: 'ansible-renamed', target });
    expect(res.changed).toBeGreaterThan(0);
    expect(await mustExec(fleet, reach, 'pgrep -x telegraf || true')).toBe('');
    expect(await mustExec(fleet, reach, 'pgrep -f "[t]elegraf-supervisor" || true')).toBe('');
    const leftovers = await mustExec(
      fleet,
      reach,
      'for p in /etc/telegraf /etc/default/telegraf /usr/local/bin/telegraf /usr/local/lib/telegraf /run/telegraf ' +
        '/run/telegraf-supervisor.pid /var/log/telegraf /etc/ssh/sshd_config.d/50-agent-onboarding.conf; do test -e "$p" && echo "$p"; done; ' +
        'id telegraf 2>/dev/null; true',
    );
    expect(leftovers.trim()).toBe('');
    // sshd came back after the reload (this very exec is a new session) and a second uninstall is a no-op.
    expect((await activities.uninstallAgent({ hostId: 'ansible-renamed', target })).changed).toBe(0);
  });
});

describe('telegraf role templates', () => {
  const renderDir = mkdtempSync(path.join(os.tmpdir(), 'ao-render-'));
  afterAll(() => rmSync(renderDir, { recursive: true, force: true }));

  /** Renders role templates on this machine with the role's defaults (what the host would get). */
  async function render(templates: string[], vars: Record<string, unknown>): Promise<void> {
    const role = path.join(deployDir(), 'roles/telegraf');
    const playbook = path.join(renderDir, 'render.yml');
    const varsFile = path.join(renderDir, 'vars.json');
    writeFileSync(varsFile, JSON.stringify(vars), { mode: 0o600 });
    writeFileSync(
      playbook,
      JSON.stringify([
        {
          hosts: 'localhost',
          gather_facts: false,
          vars_files: [path.join(role, 'defaults/main.yml')],
          tasks: templates.map((t) => ({
            'ansible.builtin.template': { src: path.join(role, 'templates', t), dest: path.join(renderDir, t.replace(/\.j2$/, '')), mode: '0600' },
          })),
        },
      ]),
    );
    await execFileAsync('ansible-playbook', ['-i', 'localhost,', '-c', 'local', '-e', `@${varsFile}`, playbook], {
      // Outside a play of the role, its filters (toml_string) have to be named.
      env: { PATH: process.env.PATH, LANG: 'C.UTF-8', ANSIBLE_NOCOLOR: '1', HOME: renderDir, ANSIBLE_FILTER_PLUGINS: path.join(role, 'filter_plugins') },
    });
  }

  it('renders a systemd unit with resource limits that systemd-analyze accepts', async () => {
    const telegraf = testStackTelegraf();
    await render(['telegraf.service.j2'], { ansible_service_mgr: 'systemd', telegraf_binary_path: telegraf, telegraf_memory_high: '64M', telegraf_cpu_quota: '15%' });
    const unit = readFileSync(path.join(renderDir, 'telegraf.service'), 'utf8');
    expect(unit).toMatch(/^MemoryHigh=64M$/m);
    expect(unit).toMatch(/^MemoryMax=256M$/m);
    expect(unit).toMatch(/^CPUQuota=15%$/m);
    expect(unit).toMatch(/^Restart=always$/m);
    expect(unit).toMatch(/^User=telegraf$/m);
    expect(unit).toMatch(/^EnvironmentFile=\/etc\/default\/telegraf$/m);
    const analyze = await execFileAsync('systemd-analyze', ['verify', path.join(renderDir, 'telegraf.service')]).then(
      (r) => ({ ok: true, out: r.stderr }),
      (e: { code?: string; stderr?: string }) => ({ ok: e.code === 'ENOENT' ? null : false, out: e.stderr ?? '' }),
    );
    if (analyze.ok === null) console.warn('systemd-analyze not installed: unit checked by content only');
    else expect(analyze).toEqual({ ok: true, out: '' });
  });

  it('renders the config with the host id tag, a large buffer and the token only by reference', async () => {
    await render(['telegraf.conf.j2', 'telegraf.env.j2'], {
      telegraf_host_id: 'h-"quoted"',
      telegraf_labels: { rack: 'r1' },
      telegraf_output_url: 'http://127.0.0.1:8086',
      telegraf_influx_token: 'tok-123',
      telegraf_influx_org: 'o',
      telegraf_influx_bucket: 'b',
    });
    const conf = readFileSync(path.join(renderDir, 'telegraf.conf'), 'utf8');
    expect(conf).toContain('host_id = "h-\\"quoted\\""');
    expect(conf).toContain('"rack" = "r1"');
    expect(conf).toContain('token = "${INFLUX_TOKEN}"');
    expect(conf).not.toContain('tok-123');
    expect(conf).toMatch(/metric_buffer_limit = (\d+)/);
    expect(Number(/metric_buffer_limit = (\d+)/.exec(conf)![1])).toBeGreaterThanOrEqual(10_000);
    for (const input of ['internal', 'cpu', 'mem', 'disk', 'diskio', 'net', 'system', 'processes', 'swap', 'kernel']) {
      expect(conf).toContain(`[[inputs.${input}]]`);
    }
    const env = readFileSync(path.join(renderDir, 'telegraf.env'), 'utf8');
    expect(env).toContain("INFLUX_TOKEN='tok-123'");
    expect(env).toContain("GOMEMLIMIT='128MiB'");
    // The real binary accepts the rendered config.
    const check = await execFileAsync(testStackTelegraf(), ['config', 'check', '--config', path.join(renderDir, 'telegraf.conf')], {
      env: { INFLUX_TOKEN: 'x', PATH: process.env.PATH },
    });
    expect(check.stderr).not.toMatch(/E!/);
  });
});

function testStackTelegraf(): string {
  return (
    process.env.TELEGRAF_PATH ??
    path.join(process.env.AO_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'agent-onboarding'), 'toolchain/bin/telegraf')
  );
}
