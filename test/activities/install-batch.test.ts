import { randomBytes } from 'node:crypto';
import { createAnsibleActivities } from '../../activities/ansible';
import type { ActivityDeps } from '../../activities/deps';
import { generateEd25519 } from '../../activities/ssh/keys';
import { Keyring } from '../../lib/keyring';
import { createLogger, type Logger } from '../../lib/logging';
import { sealSecret } from '../../lib/sealed-secret';
import { FailureType, type SshTarget } from '../../workflows/contracts';
import { createFleet, fleetUnsupportedReason, type Fleet, type FleetHost } from '../fleet';
import { failureOf } from '../support/failures';
import { testStack } from '../support/stack';

// Batched installs on real fleet hosts with the real playbook: four installs that start together are ONE
// ansible-playbook run; each host gets its own summary (its own Telegraf start time), and a host whose sudo is
// broken fails alone with its named failure while the other three succeed.
const unsupported = fleetUnsupportedReason();
const suite = unsupported ? describe.skip : describe;
jest.setTimeout(300_000);

const keyring = Keyring.forTests('install-batch');
const TOKEN = `ao-batch-token-${randomBytes(8).toString('hex')}`;

/** A logger that keeps what it was told (and prints nothing). */
function recordingLogger(lines: { msg: string; fields?: Record<string, unknown> }[]): Logger {
  const base = createLogger('test-install-batch');
  const l: Logger = { ...base, info: (msg, fields) => lines.push({ msg, fields }), child: () => l };
  return l;
}

async function serviceUser(fleet: Fleet, host: FleetHost, sudo: boolean): Promise<SshTarget> {
  const keys = generateEd25519({ comment: 'batch-test' });
  const r = await fleet.exec(host, [
    'set -e',
    'useradd -m -s /bin/bash cloudroot',
    'install -d -m 700 -o cloudroot -g cloudroot /home/cloudroot/.ssh',
    'cat > /home/cloudroot/.ssh/authorized_keys',
    'chown cloudroot:cloudroot /home/cloudroot/.ssh/authorized_keys && chmod 600 /home/cloudroot/.ssh/authorized_keys',
    sudo ? "echo 'cloudroot ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/cloudroot && chmod 440 /etc/sudoers.d/cloudroot" : 'true',
    'grep -q "$(hostname)" /etc/hosts || echo "127.0.1.1 $(hostname)" >> /etc/hosts',
  ].join('\n'), { input: keys.public + '\n', timeoutMs: 60_000 });
  if (r.exitCode !== 0) throw new Error(`service user on ${host.name}: ${r.stderr}`);
  return { address: host.address, port: host.sshPort, hostKeySha256: await fleet.hostKeySha256(host), credential: { username: 'cloudroot', privateKey: sealSecret(keyring, keys.private) } };
}

suite('batched installs on fleet hosts', () => {
  let fleet: Fleet;
  let hosts: FleetHost[];
  beforeAll(async () => {
    const influx = new URL(testStack().influx.url);
    fleet = await createFleet();
    hosts = await Promise.all([0, 1, 2, 3].map((i) => fleet.addHost({ name: `bat${i}`, topology: 'reachable-influx', influxTarget: { host: influx.hostname, port: Number(influx.port) } })));
  });
  afterAll(async () => {
    await fleet?.destroy();
  });

  it('four installs that start together are one ansible-playbook run; the host without sudo fails alone', async () => {
    const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
    const deps: ActivityDeps = { keyring, log: recordingLogger(lines), influx: { ...testStack().influx, token: TOKEN }, telegrafArtifact: testStack().telegrafPath, installBatch: { max: 10, windowMs: 3000 } };
    const activities = createAnsibleActivities(deps);
    const targets = await Promise.all(hosts.map((h, i) => serviceUser(fleet, h, i !== 3)));
    const started = Date.now();
    const results = await Promise.allSettled(
      targets.map((target, i) => activities.installAgent({ hostId: `batch-${hosts[i].name}`, target, agent: { mode: 'artifact' }, outputUrl: hosts[i].influxUrl!, labels: { n: String(i) } })),
    );
    const runs = lines.filter((l) => l.msg === 'ansible-playbook starting');
    expect(runs).toHaveLength(1);
    expect(runs[0].fields).toEqual({ hosts: 4 });
    const batch = lines.find((l) => l.msg === 'install batch finished');
    expect(batch?.fields).toMatchObject({ hosts: 4, hostsOk: 3, hostsFailed: 1 });
    // Three summaries and one AnsibleFailed.
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
    const summaries = results.slice(0, 3).map((r) => (r as PromiseFulfilledResult<any>).value);
    for (const s of summaries) {
      expect(s.telegrafVersion).toMatch(/^\d+\.\d+/);
      expect(s.failed).toBe(0);
      expect(s.agentStartedAtMs).toBeGreaterThan(started - 60_000);
    }
    expect(new Set(summaries.map((s) => s.outputUrl)).size).toBe(3);
    const failed = await failureOf(Promise.reject((results[3] as PromiseRejectedResult).reason));
    expect(failed.type).toBe(FailureType.AnsibleFailed);
    expect(failed.message).toContain(hosts[3].address);
    // Each host has its own id and labels in its own config; no host got another's.
    for (const [i, h] of hosts.slice(0, 3).entries()) {
      const conf = (await fleet.exec(h, 'cat /etc/telegraf/telegraf.conf')).stdout;
      expect(conf).toContain(`batch-${h.name}`);
      expect(conf).toContain(`"n" = "${i}"`);
      for (const other of hosts.filter((x) => x !== h)) expect(conf).not.toContain(`batch-${other.name}`);
    }
  });
});
