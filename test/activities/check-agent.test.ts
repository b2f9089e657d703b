import { createAnsibleActivities } from '../../activities/ansible';
import type { ActivityDeps } from '../../activities/deps';
import { createSshActivities } from '../../activities/ssh';
import { checkAgent } from '../../activities/ssh/check-agent';
import { generateEd25519 } from '../../activities/ssh/keys';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { sealSecret } from '../../lib/sealed-secret';
import type { AgentHealth, SshTarget } from '../../workflows/contracts';
import { createFleet, fleetUnsupportedReason, type Fleet, type FleetHost } from '../fleet';
import { failureOf } from '../support/failures';
import { fleetLogins, mustExec, addDirectBastionPrivate } from '../support/fleet-logins';
import { eventually, testStack } from '../support/stack';

// checkAgent on real fleet hosts, with Telegraf installed by the real role. Fleet hosts have no init system, so the
// role runs Telegraf under its supervisor: that is the path taken here (the systemd path is covered by the specs).

const unsupported = fleetUnsupportedReason();
const describeFleet = unsupported ? describe.skip : describe;
if (unsupported) console.warn(`skipping checkAgent activity tests: ${unsupported}`);
jest.setTimeout(240_000);

const keyring = Keyring.forTests('check-agent-activities');
const makeDeps = (): ActivityDeps => ({ keyring, log: createLogger('test-check-agent'), influx: testStack().influx, telegrafArtifact: testStack().telegrafPath });

const SUPERVISED = /^supervised pid (\d+) \(supervisor pid (\d+)\)$/;

describeFleet('checkAgent on fleet hosts', () => {
  let fleet: Fleet;
  let direct: FleetHost;
  let bastion: FleetHost;
  let priv: FleetHost;
  let target: SshTarget;
  const hostId = 'check-agent-direct';
  // Shorter restart waits than production, so the case that never comes up does not take half a minute.
  const check = (restart?: boolean) => checkAgent(makeDeps(), { restartWaitS: 8 })({ hostId, target, ...(restart === undefined ? {} : { restart }) });
  const telegrafPids = async () => (await fleet.exec(direct, 'pgrep -x telegraf')).stdout.split('\n').filter(Boolean);

  beforeAll(async () => {
    fleet = await createFleet();
    ({ direct, bastion, priv } = await addDirectBastionPrivate(fleet, 'ag'));
    target = await fleetLogins(fleet, makeDeps).onboardCloudroot(direct, hostId);
    // Nothing listens at the output (no tunnel here): Telegraf runs and logs write errors.
    await createAnsibleActivities(makeDeps()).installAgent({ hostId, target, agent: { mode: 'artifact', interval: '1s' }, outputUrl: 'http://127.0.0.1:18086' });
  });

  afterAll(async () => {
    await fleet?.destroy();
  });

  it('reports a supervised Telegraf that runs, and leaves it alone', async () => {
    const pid = (await mustExec(fleet, direct, 'cat /run/telegraf/telegraf.pid')).trim();
    const supervisor = (await mustExec(fleet, direct, 'cat /run/telegraf-supervisor.pid')).trim();
    const before = Date.now();
    const health = await check();
    expect(health).toMatchObject({ manager: 'supervisor', running: true, restarted: false, state: `supervised pid ${pid} (supervisor pid ${supervisor})` });
    expect(health.checkedAtMs).toBeGreaterThanOrEqual(before);
    expect(await telegrafPids()).toEqual([pid]);
  });

  it("reports Telegraf's newest error line from the supervisor's log, bounded", async () => {
    const health = await eventually(async () => {
      const h = await check(false);
      return h.lastError?.includes(' E! ') ? h : undefined;
    }, 60_000, 1_000);
    // "E! [outputs.influxdb_v2] When writing to …" or "E! [agent] Error writing to outputs.influxdb_v2: …"
    expect(health.lastError).toMatch(/E! \[(outputs\.influxdb_v2|agent)\] .*127\.0\.0\.1:18086.*connection refused/);
    expect(health.lastError!.length).toBeLessThanOrEqual(401);
    expect(health.lastError).not.toContain('\n');
  });

  it('finds a killed Telegraf stopped, and starts it again the way the role does', async () => {
    await mustExec(fleet, direct, 'kill -KILL "$(cat /run/telegraf-supervisor.pid)" "$(cat /run/telegraf/telegraf.pid)"');
    await eventually(async () => (await telegrafPids()).length === 0, 10_000);

    // restart: false only looks (the pid files still name the dead processes).
    const seen = await check(false);
    expect(seen).toMatchObject({ manager: 'supervisor', running: false, restarted: false, state: 'supervisor not running' });
    expect(await telegrafPids()).toEqual([]);

    const health = await check();
    expect(health).toMatchObject({ manager: 'supervisor', running: true, restarted: true });
    const [, pid, supervisor] = SUPERVISED.exec(health.state) ?? [];
    expect(await telegrafPids()).toEqual([pid]);
    expect((await mustExec(fleet, direct, 'cat /run/telegraf-supervisor.pid')).trim()).toBe(supervisor);
    expect((await mustExec(fleet, direct, `cat /proc/${supervisor}/comm; ps -o user= -p ${pid}`)).split('\n').map((l) => l.trim())).toEqual(['telegraf-superv', 'telegraf', '']);
    // Running: a second check changes nothing.
    expect(await check()).toMatchObject({ running: true, restarted: false, state: health.state });
  });

  it('says when Telegraf does not stay up after the restart, and why; a fixed config brings it back', async () => {
    await mustExec(fleet, direct, 'cp -p /etc/telegraf/telegraf.conf "$HOME/telegraf.conf.good" && echo "[[broken" >> /etc/telegraf/telegraf.conf');
    await mustExec(fleet, direct, 'kill -KILL "$(cat /run/telegraf-supervisor.pid)" "$(cat /run/telegraf/telegraf.pid)"');
    await eventually(async () => (await telegrafPids()).length === 0, 10_000);

    const failed = await check();
    expect(failed).toMatchObject({ manager: 'supervisor', running: false, restarted: true });
    expect(failed.state).toMatch(/telegraf did not stay up after start-stop-daemon --start$/);
    expect(failed.lastError).toMatch(/E! loading config file \/etc\/telegraf\/telegraf\.conf failed/);

    // The supervisor keeps trying with its backoff; with the config fixed the next check has it running again
    // (started by that check through SIGHUP, or by the supervisor's own retry just before).
    await mustExec(fleet, direct, 'mv "$HOME/telegraf.conf.good" /etc/telegraf/telegraf.conf');
    const back: AgentHealth = await eventually(async () => {
      const h = await check();
      return h.running ? h : undefined;
    }, 60_000, 1_000);
    expect(back.state).toMatch(SUPERVISED);
    expect(await telegrafPids()).toHaveLength(1);
  });

  it('reports a host without Telegraf, through its bastion, as manager none without starting anything', async () => {
    const logins = fleetLogins(fleet, makeDeps);
    const privTarget = await logins.onboardCloudroot(priv, 'check-agent-private', await logins.pinnedLogin(bastion));
    const health = await checkAgent(makeDeps())({ hostId: 'check-agent-private', target: privTarget });
    expect(health).toMatchObject({ manager: 'none', running: false, restarted: false, state: 'not installed' });
    expect(health).not.toHaveProperty('lastError');
    expect((await fleet.exec(priv, 'pgrep -x telegraf')).exitCode).toBe(1);
  });

  it("SSH failures are the dialer's named failures", async () => {
    const a = createSshActivities(makeDeps());
    const stranger = { username: 'cloudroot', privateKey: sealSecret(keyring, generateEd25519().private) };
    expect(await failureOf(a.checkAgent({ hostId, target: { ...target, credential: stranger } }))).toMatchObject({ type: 'AuthFailed', nonRetryable: true });
    expect(await failureOf(a.checkAgent({ hostId, target: { ...target, hostKeySha256: await fleet.hostKeySha256(bastion) } }))).toMatchObject({ type: 'HostKeyMismatch', nonRetryable: true });
    expect(await failureOf(a.checkAgent({ hostId, target: { ...target, port: direct.sshPort + 1 } }))).toMatchObject({ type: 'HostUnreachable', nonRetryable: false });
    expect(await failureOf(a.checkAgent({ hostId, target: { ...target, hostKeySha256: undefined } }))).toMatchObject({ type: 'InvalidInput' });
  });
});
