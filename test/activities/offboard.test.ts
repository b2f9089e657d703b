import { createAnsibleActivities } from '../../activities/ansible';
import type { ActivityDeps } from '../../activities/deps';
import { createSshActivities } from '../../activities/ssh';
import { dialSsh } from '../../activities/ssh/dialer';
import { FORWARD_KEY_TAG_PREFIX, forwardKeyLine } from '../../activities/ssh/forward-key';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { sealSecret } from '../../lib/sealed-secret';
import type { SshCredential, SshTarget } from '../../workflows/contracts';
import { createFleet, fleetUnsupportedReason, type Fleet, type FleetHost } from '../fleet';
import { failureOf } from '../support/failures';
import { fleetLogins, mustExec, addDirectBastionPrivate } from '../support/fleet-logins';
import { eventually, testStack } from '../support/stack';
import { generateEd25519 } from '../../activities/ssh/keys';

// The offboarding saga's activities on real fleet hosts: a host onboarded by the real activities (probe, cloudroot,
// forward key, Ansible) is offboarded by uninstallAgent and removeCloudroot, and the host is then searched for
// anything of ours. Fleet hosts have no init system: the role's supervised path (the systemd path is not run here).

const unsupported = fleetUnsupportedReason();
const describeFleet = unsupported ? describe.skip : describe;
if (unsupported) console.warn(`skipping offboarding activity tests: ${unsupported}`);
jest.setTimeout(240_000);

const keyring = Keyring.forTests('offboard-activities');

function makeDeps(): ActivityDeps {
  return { keyring, log: createLogger('test-offboard'), influx: testStack().influx, telegrafArtifact: testStack().telegrafPath };
}

/** Everything the role and createCloudroot put on a host; none of it may be left after offboarding. */
const OURS = [
  '/etc/telegraf', '/etc/default/telegraf', '/usr/local/bin/telegraf', '/usr/local/lib/telegraf', '/run/telegraf',
  '/run/telegraf-supervisor.pid', '/var/log/telegraf', '/etc/systemd/system/telegraf.service',
  '/etc/ssh/sshd_config.d/50-agent-onboarding.conf', '/etc/sudoers.d/90-cloudroot', '/home/cloudroot',
];

/** What is left of ours on the host: paths, users, processes, files owned by the removed uid, names in /etc. */
async function leftovers(fleet: Fleet, host: FleetHost, cloudrootUid: string, opts: { telegrafUser: 'ours' | 'theirs' }): Promise<string[]> {
  const found = await mustExec(
    fleet,
    host,
    [
      `for p in ${OURS.join(' ')}; do test -e "$p" -o -L "$p" && echo "path $p"; done`,
      'getent passwd cloudroot >/dev/null && echo "user cloudroot"',
      'getent group cloudroot >/dev/null && echo "group cloudroot"',
      opts.telegrafUser === 'ours' ? 'getent passwd telegraf >/dev/null && echo "user telegraf"; getent group telegraf >/dev/null && echo "group telegraf"' : 'true',
      'pgrep -x telegraf >/dev/null && echo "process telegraf"',
      // By process name (the kernel keeps 15 characters): this very script's argv names the supervisor's files.
      'pgrep -x telegraf-superv >/dev/null && echo "process telegraf-supervisor"',
      `pgrep -u ${cloudrootUid} >/dev/null && echo "process of uid ${cloudrootUid}"`,
      `find / /run -xdev -uid ${cloudrootUid} 2>/dev/null | sed 's/^/owned /'`,
      "find / /run -xdev \\( -name '*telegraf*' -o -name '*cloudroot*' -o -name '*agent-onboarding*' \\) 2>/dev/null | sed 's/^/named /'",
      // The shadow tools' backups (/etc/passwd- and friends) keep the previous state by design; 00-ao-fleet.conf
      // is the test fleet's own sshd configuration.
      "grep -rlE 'cloudroot|agent-onboarding' /etc --exclude='*-' --exclude=00-ao-fleet.conf 2>/dev/null | sed 's/^/mentioned in /'",
      'true',
    ].join('\n'),
  );
  return found.split('\n').filter(Boolean);
}

describeFleet('offboarding activities on fleet hosts', () => {
  let fleet: Fleet;
  let direct: FleetHost;
  let bastion: FleetHost;
  let priv: FleetHost;
  const ssh = () => createSshActivities(makeDeps());
  const ansible = () => createAnsibleActivities(makeDeps());

  beforeAll(async () => {
    fleet = await createFleet();
    ({ direct, bastion, priv } = await addDirectBastionPrivate(fleet, 'off'));
  });

  afterAll(async () => {
    await fleet?.destroy();
  });

  const loginOf = (h: FleetHost, extra: Partial<SshTarget> = {}) => fleetLogins(fleet, makeDeps).loginOf(h, extra);
  /** The bastion's own login with its key pinned: the jump host of the private host, and the proxy's login. */
  const bastionLogin = () => fleetLogins(fleet, makeDeps).pinnedLogin(bastion);
  const onboardCloudroot = (host: FleetHost, hostId: string, via?: SshTarget) => fleetLogins(fleet, makeDeps).onboardCloudroot(host, hostId, via);

  it('offboards a host onboarded by the real activities, leaves nothing of ours, and is a no-op the second time', async () => {
    const hostId = 'offboard-direct';
    const target = await onboardCloudroot(direct, hostId);
    const fk = await ssh().authorizeForwardKey({ tunnelId: hostId, target, listen: { address: '127.0.0.1', port: 18086 } });
    const installed = await ansible().installAgent({ hostId, target, agent: { mode: 'artifact', interval: '2s' }, outputUrl: 'http://127.0.0.1:18086' });
    expect(installed).toMatchObject({ failed: 0, telegrafVersion: '1.39.3' });
    const uid = (await mustExec(fleet, direct, 'id -u cloudroot')).trim();
    expect(await mustExec(fleet, direct, 'pgrep -x telegraf; cat ~cloudroot/.ssh/authorized_keys')).toContain(`${FORWARD_KEY_TAG_PREFIX}${hostId}`);
    // Before offboarding, there is plenty to find (the check can see what it looks for).
    expect((await leftovers(fleet, direct, uid, { telegrafUser: 'ours' })).length).toBeGreaterThan(10);

    // A tunnel still connected with the forward-only key: a session of the user that must end with it.
    const held = await dialSsh(target, { keyring, credentialOverride: { username: fk.username, privateKey: fk.privateKey } });
    const heldClosed = new Promise<void>((resolve) => held.client.once('close', () => resolve()));

    const uninstalled = await ansible().uninstallAgent({ hostId, target });
    expect(uninstalled.alreadyGone).toBe(false);
    expect(uninstalled.changed).toBeGreaterThan(0);
    const removed = await ssh().removeCloudroot({ hostId, target });
    expect(removed).toMatchObject({ removed: true, alreadyGone: false, verified: 'login-refused' });
    expect(removed.notes).toEqual([
      'removed user cloudroot',
      'removed its home /home/cloudroot (authorized_keys with it)',
      'removed /etc/sudoers.d/90-cloudroot',
      'ended 1 process(es) of its other sessions',
    ]);
    await heldClosed;

    // On the host: our session's own processes exit once we have disconnected.
    await eventually(async () => (await fleet.exec(direct, `pgrep -u ${uid}`)).exitCode === 1, 10_000);
    expect(await leftovers(fleet, direct, uid, { telegrafUser: 'ours' })).toEqual([]);
    expect((await mustExec(fleet, direct, 'ls -A /etc/sudoers.d')).trim()).toBe('README');
    expect((await fleet.exec(direct, 'getent passwd cloudroot')).exitCode).toBe(2);
    // sshd still takes new logins after the drop-in's reload (the bootstrap user's, here).
    expect((await ssh().probeHost({ target: loginOf(direct, { hostKeySha256: target.hostKeySha256 }) })).facts.hostname).toBe(direct.hostname);
    // Neither key logs in any more.
    for (const credential of [target.credential, { username: fk.username, privateKey: fk.privateKey }]) {
      expect((await failureOf(dialSsh({ ...target, credential }, { keyring }))).type).toBe('AuthFailed');
    }

    // Idempotent: both succeed again and say there was nothing left.
    const again = await ansible().uninstallAgent({ hostId, target });
    expect(again).toMatchObject({ changed: 0, alreadyGone: true });
    expect(again.notes[0]).toMatch(/cloudroot login is refused/);
    expect(await ssh().removeCloudroot({ hostId, target })).toEqual({
      removed: false,
      alreadyGone: true,
      verified: 'login-refused',
      notes: ['the cloudroot login was already refused: nothing to remove'],
    });
  });

  it('behind a bastion: uninstalls where nothing was installed, keeps a telegraf user that is not its own, and removes cloudroot through the jump host', async () => {
    const hostId = 'offboard-private';
    // A telegraf user that was there before us (an operator's, or a package's).
    await mustExec(fleet, priv, "useradd --system --no-create-home --shell /usr/sbin/nologin --comment 'operator telegraf' telegraf");
    const theirs = (await mustExec(fleet, priv, 'getent passwd telegraf')).trim();
    const target = await onboardCloudroot(priv, hostId, await bastionLogin());
    const uid = (await mustExec(fleet, priv, 'id -u cloudroot')).trim();

    // Never installed: nothing to do, nothing changed, the user that is not ours untouched.
    const never = await ansible().uninstallAgent({ hostId, target });
    expect(never).toMatchObject({ changed: 0, alreadyGone: true, notes: ['nothing of the agent was left on the host'] });
    expect((await mustExec(fleet, priv, 'getent passwd telegraf')).trim()).toBe(theirs);

    // Installed over the existing user (used as it is), then uninstalled: everything goes but that user.
    await ansible().installAgent({ hostId, target, agent: { mode: 'artifact' }, outputUrl: 'http://127.0.0.1:18086' });
    expect((await mustExec(fleet, priv, 'getent passwd telegraf')).trim()).toBe(theirs);
    expect(await mustExec(fleet, priv, 'ps -eo user=,comm=')).toMatch(/^telegraf\s+telegraf$/m);
    expect((await ansible().uninstallAgent({ hostId, target })).alreadyGone).toBe(false);
    expect((await mustExec(fleet, priv, 'getent passwd telegraf')).trim()).toBe(theirs);

    const removed = await ssh().removeCloudroot({ hostId, target });
    expect(removed).toMatchObject({ removed: true, alreadyGone: false, verified: 'login-refused' });
    await eventually(async () => (await fleet.exec(priv, `pgrep -u ${uid}`)).exitCode === 1, 10_000);
    expect(await leftovers(fleet, priv, uid, { telegrafUser: 'theirs' })).toEqual([]);
    expect((await mustExec(fleet, priv, 'getent passwd telegraf')).trim()).toBe(theirs);
    // The jump host is untouched: its login still works.
    expect((await ssh().probeHost({ target: await bastionLogin() })).facts.hostname).toBe(bastion.hostname);

    expect(await ssh().removeCloudroot({ hostId, target })).toMatchObject({ removed: false, alreadyGone: true, verified: 'login-refused' });
    expect(await ansible().uninstallAgent({ hostId, target })).toMatchObject({ changed: 0, alreadyGone: true });
  });

  it("revokes a proxy tunnel's forward key on the bastion, keeping its other authorized_keys lines", async () => {
    const u = bastion.bootstrapUser;
    const operatorKey = generateEd25519({ comment: 'operator@laptop' }).public;
    const otherTunnel = generateEd25519().public.split(' ').slice(0, 2).join(' ');
    const others = [
      '# keys the operator manages',
      operatorKey,
      forwardKeyLine(otherTunnel, '10.213.255.1:18087', 'proxy-other'),
      // Our tag as a prefix of a longer id, and our tag not in the last field: not this tunnel's lines.
      `restrict ${otherTunnel} ${FORWARD_KEY_TAG_PREFIX}proxy-offb1-extra`,
      `restrict ${otherTunnel} ${FORWARD_KEY_TAG_PREFIX}proxy-offb1 comment`,
    ].join('\n') + '\n';
    await mustExec(fleet, bastion, `install -d -m 700 -o ${u} -g ${u} ~${u}/.ssh && cat > ~${u}/.ssh/authorized_keys && chown ${u}: ~${u}/.ssh/authorized_keys && chmod 600 ~${u}/.ssh/authorized_keys`, others);

    const login = await bastionLogin();
    const tunnelId = 'proxy-offb1';
    // As the onboarding does for a proxy data path: the forward listens on the bastion's private address.
    const fk = await ssh().authorizeForwardKey({ tunnelId, target: login, listen: { address: priv.proxyAddress!, port: 18086 }, hop: 'via' });
    expect(await mustExec(fleet, bastion, `cat ~${u}/.ssh/authorized_keys`)).toBe(others + forwardKeyLine(fk.publicKey, fk.permitListen, tunnelId) + '\n');

    expect(await ssh().revokeForwardKey({ tunnelId, target: login, hop: 'via' })).toEqual({ removed: true });
    expect(await mustExec(fleet, bastion, `cat ~${u}/.ssh/authorized_keys`)).toBe(others);
    const revokedLogin = await failureOf(dialSsh({ ...login, credential: { username: fk.username, privateKey: fk.privateKey } }, { keyring }));
    expect(revokedLogin.type).toBe('AuthFailed');

    // Idempotent: nothing to remove, and the file is not even rewritten.
    const stat = `stat -c '%i %Y %a' ~${u}/.ssh/authorized_keys`;
    const before = await mustExec(fleet, bastion, stat);
    expect(await ssh().revokeForwardKey({ tunnelId, target: login, hop: 'via' })).toEqual({ removed: false });
    expect(await mustExec(fleet, bastion, stat)).toBe(before);
    expect(await mustExec(fleet, bastion, `cat ~${u}/.ssh/authorized_keys`)).toBe(others);
    // The bastion login still works with its own credential.
    expect((await ssh().probeHost({ target: login })).facts.hostname).toBe(bastion.hostname);
  });

  it('an unreachable host is the retryable HostUnreachable (directly and behind the bastion); a changed host key stops', async () => {
    const someKey: SshCredential = { username: 'cloudroot', privateKey: sealSecret(keyring, generateEd25519().private) };
    const pin = await fleet.hostKeySha256(direct);
    const closed: SshTarget = { address: direct.address, port: direct.sshPort + 1, credential: someKey, hostKeySha256: pin };

    const f1 = await failureOf(ssh().removeCloudroot({ hostId: 'gone', target: closed }));
    expect(f1).toMatchObject({ type: 'HostUnreachable', nonRetryable: false });
    const f2 = await failureOf(ansible().uninstallAgent({ hostId: 'gone', target: closed }));
    expect(f2).toMatchObject({ type: 'HostUnreachable', nonRetryable: false });
    const f3 = await failureOf(ssh().revokeForwardKey({ tunnelId: 'proxy-x', target: closed, hop: 'via' }));
    expect(f3).toMatchObject({ type: 'HostUnreachable', nonRetryable: false });
    expect(f3.details?.[0]).toMatchObject({ hop: 'via' });

    // The private host is down; its bastion is up.
    await fleet.setLinkDown(priv, true);
    try {
      const behind: SshTarget = { address: priv.address, port: priv.sshPort, credential: someKey, hostKeySha256: await fleet.hostKeySha256(priv), via: await bastionLogin() };
      const f4 = await failureOf(ssh().removeCloudroot({ hostId: 'gone', target: behind }));
      expect(f4).toMatchObject({ type: 'HostUnreachable', nonRetryable: false });
      expect(f4.details?.[0]).toMatchObject({ address: priv.address, hop: 'target' });
    } finally {
      await fleet.setLinkDown(priv, false);
    }

    const wrongPin = await failureOf(ssh().removeCloudroot({ hostId: 'x', target: { ...closed, port: direct.sshPort, hostKeySha256: await fleet.hostKeySha256(bastion) } }));
    expect(wrongPin).toMatchObject({ type: 'HostKeyMismatch', nonRetryable: true });
    const unpinned = await failureOf(ssh().removeCloudroot({ hostId: 'x', target: { ...closed, hostKeySha256: undefined } }));
    expect(unpinned).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
  });
});
