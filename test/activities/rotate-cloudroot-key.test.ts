import type { ActivityDeps } from '../../activities/deps';
import { createSshActivities } from '../../activities/ssh';
import { parseAuthorizedKey } from '../../activities/ssh/authorized-keys';
import { dialSsh } from '../../activities/ssh/dialer';
import { FORWARD_KEY_TAG_PREFIX } from '../../activities/ssh/forward-key';
import { generateEd25519 } from '../../activities/ssh/keys';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { sealSecret } from '../../lib/sealed-secret';
import type { SshCredential, SshTarget } from '../../workflows/contracts';
import { FINGERPRINT_PATTERN } from '../../workflows/input-rules';
import { createFleet, fleetUnsupportedReason, type Fleet, type FleetHost } from '../fleet';
import { failureOf } from '../support/failures';
import { fleetLogins, mustExec, addDirectBastionPrivate } from '../support/fleet-logins';

// Key rotation of the service user on real sshd: addCloudrootKey then retireCloudrootKeys, checked from outside by
// what sshd accepts and by the file on the host.

const unsupported = fleetUnsupportedReason();
const describeFleet = unsupported ? describe.skip : describe;
if (unsupported) console.warn(`skipping key rotation activity tests: ${unsupported}`);
jest.setTimeout(180_000);

const keyring = Keyring.forTests('rotate-cloudroot-activities');
const makeDeps = (): ActivityDeps => ({
  keyring,
  log: createLogger('test-rotate'),
  influx: { url: 'http://127.0.0.1:1', token: 'unused:unused', org: 'unused', bucket: 'unused' },
});

const AK = '/home/cloudroot/.ssh/authorized_keys';

describeFleet('cloudroot key rotation on fleet hosts', () => {
  let fleet: Fleet;
  let direct: FleetHost;
  let bastion: FleetHost;
  let priv: FleetHost;
  const ssh = () => createSshActivities(makeDeps());
  const file = (h: FleetHost) => mustExec(fleet, h, `cat ${AK}`);
  const stat = (h: FleetHost) => mustExec(fleet, h, `stat -c '%i %Y %a %U:%G' ${AK}`);
  const fingerprints = async (h: FleetHost) => (await file(h)).split('\n').map((l) => parseAuthorizedKey(l)?.sha256).filter(Boolean);

  /** A login with `credential` and `sudo -n true`: what a service login must be able to do. */
  async function canSudo(target: SshTarget, credential: SshCredential): Promise<boolean> {
    const s = await dialSsh({ ...target, credential }, { keyring });
    try {
      return (await s.exec('sudo -n true')).code === 0;
    } finally {
      await s.close();
    }
  }
  const refused = async (target: SshTarget, credential: SshCredential) => (await failureOf(dialSsh({ ...target, credential }, { keyring }))).type;

  beforeAll(async () => {
    fleet = await createFleet();
    ({ direct, bastion, priv } = await addDirectBastionPrivate(fleet, 'rk'));
  });

  afterAll(async () => {
    await fleet?.destroy();
  });

  it('adds a key beside the old one, retires the old one, keeps forward-only keys, and retires nothing the second time', async () => {
    const hostId = 'rotate-direct';
    const target = await fleetLogins(fleet, makeDeps).onboardCloudroot(direct, hostId);
    const oldKey = target.credential;
    const fk = await ssh().authorizeForwardKey({ tunnelId: hostId, target, listen: { address: '127.0.0.1', port: 18086 } });
    const forwardLine = (await file(direct)).split('\n').find((l) => l.endsWith(`${FORWARD_KEY_TAG_PREFIX}${hostId}`))!;
    expect(forwardLine).toMatch(/^restrict,port-forwarding,permitlisten="127\.0\.0\.1:18086"/);
    const forwardKey = { username: fk.username, privateKey: fk.privateKey };

    const added = await ssh().addCloudrootKey({ hostId, target });
    expect(added.username).toBe('cloudroot');
    expect(added.publicKeySha256).toMatch(FINGERPRINT_PATTERN);
    expect(JSON.stringify(added)).not.toContain('PRIVATE KEY');
    const newKey = { username: added.username, privateKey: added.privateKey };
    // The new line is in the cloudroot script's form: the bare key with the host's comment.
    const lines = (await file(direct)).split('\n').filter(Boolean);
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(new RegExp(`^ssh-ed25519 [A-Za-z0-9+/]+=* agent-onboarding:${hostId}$`));
    expect(parseAuthorizedKey(lines[2])!.sha256).toBe(added.publicKeySha256);
    // Both keys log in with sudo.
    expect(await canSudo(target, oldKey)).toBe(true);
    expect(await canSudo(target, newKey)).toBe(true);

    const newTarget = { ...target, credential: newKey };
    expect(await ssh().retireCloudrootKeys({ hostId, target: newTarget, keepPublicKeySha256: added.publicKeySha256 })).toEqual({ removed: 1 });
    expect(await refused(target, oldKey)).toBe('AuthFailed');
    expect(await canSudo(target, newKey)).toBe(true);
    // The forward-only key is still there as it was, and still authenticates.
    expect(await file(direct)).toBe(`${forwardLine}\n${lines[2]}\n`);
    await (await dialSsh({ ...target, credential: forwardKey }, { keyring })).close();
    expect((await stat(direct)).split(' ').slice(2).join(' ')).toBe('600 cloudroot:cloudroot\n');
    expect((await mustExec(fleet, direct, 'ls -A /home/cloudroot/.ssh')).trim()).toBe('authorized_keys');

    // Idempotent: nothing left to remove, and the file is not even rewritten.
    const before = await stat(direct);
    expect(await ssh().retireCloudrootKeys({ hostId, target: newTarget, keepPublicKeySha256: added.publicKeySha256 })).toEqual({ removed: 0 });
    expect(await stat(direct)).toBe(before);

    // A retried add leaves the first attempt's key behind; the retire after the second takes it out too.
    const orphan = await ssh().addCloudrootKey({ hostId, target: newTarget });
    const second = await ssh().addCloudrootKey({ hostId, target: newTarget });
    expect(await fingerprints(direct)).toHaveLength(4);
    const secondTarget = { ...target, credential: { username: second.username, privateKey: second.privateKey } };
    expect(await ssh().retireCloudrootKeys({ hostId, target: secondTarget, keepPublicKeySha256: second.publicKeySha256 })).toEqual({ removed: 2 });
    expect(await refused(target, newKey)).toBe('AuthFailed');
    expect(await refused(target, { username: 'cloudroot', privateKey: orphan.privateKey })).toBe('AuthFailed');
    expect(await canSudo(target, secondTarget.credential)).toBe(true);
    expect((await file(direct)).split('\n')[0]).toBe(forwardLine);
  });

  it('removes nothing when the key to keep does not log in, is not the login key, or cannot sudo', async () => {
    const hostId = 'rotate-refusals';
    const logins = fleetLogins(fleet, makeDeps);
    // Behind the bastion: the jump host's pin is carried through every step.
    const target = await logins.onboardCloudroot(priv, hostId, await logins.pinnedLogin(bastion));
    const fk = await ssh().authorizeForwardKey({ tunnelId: hostId, target, listen: { address: '127.0.0.1', port: 18086 } });
    const added = await ssh().addCloudrootKey({ hostId, target });
    const before = await file(priv);
    const beforeStat = await stat(priv);
    const unchanged = async () => {
      expect(await file(priv)).toBe(before);
      expect(await stat(priv)).toBe(beforeStat);
    };

    // A key the server has never seen: the dialer's AuthFailed, and nothing removed.
    const stranger = generateEd25519();
    const strangerSha = parseAuthorizedKey(stranger.public)!.sha256;
    const f1 = await failureOf(ssh().retireCloudrootKeys({
      hostId, target: { ...target, credential: { username: 'cloudroot', privateKey: sealSecret(keyring, stranger.private) } }, keepPublicKeySha256: strangerSha,
    }));
    expect(f1).toMatchObject({ type: 'AuthFailed', nonRetryable: true });
    await unchanged();

    // Logged in with the new key but asked to keep another one (or a made-up fingerprint): refused before connecting.
    const newTarget = { ...target, credential: { username: added.username, privateKey: added.privateKey } };
    for (const keep of [strangerSha, 'SHA256:' + 'A'.repeat(43), 'not-a-fingerprint']) {
      expect(await failureOf(ssh().retireCloudrootKeys({ hostId, target: newTarget, keepPublicKeySha256: keep }))).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
    }
    await unchanged();

    // The forward-only key logs in but runs nothing: it can never be the one that stays.
    const forwardSha = (await fingerprints(priv))[1];
    const f2 = await failureOf(ssh().retireCloudrootKeys({
      hostId, target: { ...target, credential: { username: fk.username, privateKey: fk.privateKey } }, keepPublicKeySha256: forwardSha!,
    }));
    expect(f2).toMatchObject({ type: 'CloudrootFailed', nonRetryable: true });
    await unchanged();

    // An added key that cannot sudo is not handed out, and its line is taken out again.
    await mustExec(fleet, priv, 'mv /etc/sudoers.d/90-cloudroot "$HOME/90-cloudroot"');
    try {
      const f3 = await failureOf(ssh().addCloudrootKey({ hostId, target }));
      expect(f3).toMatchObject({ type: 'CloudrootFailed', nonRetryable: true });
      expect(f3.message).toMatch(/"sudo -n true" as cloudroot with the new key failed/);
      expect(await file(priv)).toBe(before);
    } finally {
      await mustExec(fleet, priv, 'mv "$HOME/90-cloudroot" /etc/sudoers.d/90-cloudroot');
    }

    // Both keys still work; the real retire then goes through the bastion.
    expect(await canSudo(target, target.credential)).toBe(true);
    expect(await ssh().retireCloudrootKeys({ hostId, target: newTarget, keepPublicKeySha256: added.publicKeySha256 })).toEqual({ removed: 1 });
    expect(await refused(target, target.credential)).toBe('AuthFailed');
    expect(await canSudo(target, newTarget.credential)).toBe(true);
  });
});
