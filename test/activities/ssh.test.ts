import { execFile, execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, utils } from 'ssh2';
import { createSshActivities } from '../../activities/ssh';
import { dialSsh, openJumpListener } from '../../activities/ssh/dialer';
import type { ActivityDeps } from '../../activities/deps';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { sealSecret, unsealSecret } from '../../lib/sealed-secret';
import type { SshCredential, SshTarget } from '../../workflows/contracts';
import { createFleet, fleetUnsupportedReason, type Fleet, type FleetHost } from '../fleet';
import { failureOf } from '../support/failures';
import { generateEd25519 } from '../../activities/ssh/keys';

// The SSH activities against real OpenSSH on fleet hosts (network namespaces with their own sshd).
// Needs root and the cached base image; skipped with the reason otherwise.

const unsupported = fleetUnsupportedReason();
const describeFleet = unsupported ? describe.skip : describe;
if (unsupported) console.warn(`skipping SSH activity tests: ${unsupported}`);

const PASSWORD = `'"$()\`; & ü`;
const keyring = Keyring.forTests('ssh-activities');
const deps: ActivityDeps = {
  keyring,
  log: createLogger('test-ssh', {}),
  influx: { url: 'http://127.0.0.1:1', token: 'unused:unused', org: 'unused', bucket: 'unused' },
};
const activities = createSshActivities(deps);
const execFileAsync = promisify(execFile);

/** Every command any ssh2 client of this process sent, to prove no secret was ever put in a command line. */
const sentCommands: string[] = [];
const realExec = Client.prototype.exec;
beforeAll(() => {
  const recording = function (this: Client, ...args: unknown[]) {
    sentCommands.push(String(args[0]));
    return (realExec as unknown as (...a: unknown[]) => Client).apply(this, args);
  };
  jest.spyOn(Client.prototype, 'exec').mockImplementation(recording as unknown as typeof Client.prototype.exec);
});
afterAll(() => jest.restoreAllMocks());

function passwordCred(host: FleetHost, password = host.bootstrapPassword): SshCredential {
  return { username: host.bootstrapUser, password: sealSecret(keyring, password) };
}

function targetOf(host: FleetHost, credential: SshCredential = passwordCred(host), extra: Partial<SshTarget> = {}): SshTarget {
  return { address: host.address, port: host.sshPort, credential, ...extra };
}


async function mustExec(fleet: Fleet, host: FleetHost, command: string, input?: string): Promise<string> {
  const r = await fleet.exec(host, command, { input });
  if (r.exitCode !== 0) throw new Error(`${command.slice(0, 80)} on ${host.name} failed: ${r.stderr}`);
  return r.stdout;
}

async function waitUntil(check: () => Promise<boolean>, deadlineMs = 10_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met before the deadline');
    await new Promise((r) => setImmediate(r));
  }
}

/**
 * Records every distinct argv seen in the host's processes until stopped (python3 from the base image, so it
 * needs no tool of ours). The scanner itself is given no secret: the comparison happens here.
 */
async function scanArgv(fleet: Fleet, host: FleetHost): Promise<{ stop(): Promise<string[]> }> {
  const script = [
    'import os, time',
    'seen = set(); first = True',
    'while not os.path.exists("/tmp/argv-scan.stop"):',
    '    for p in os.listdir("/proc"):',
    '        if p.isdigit():',
    '            try: seen.add(open("/proc/%s/cmdline" % p, "rb").read().replace(b"\\0", b" ").decode("utf-8", "replace"))',
    '            except OSError: pass',
    '    if first: open("/tmp/argv-scan.ready", "w").close(); first = False',
    '    time.sleep(0.002)',
    'print("\\n".join(sorted(s for s in seen if s)))',
  ].join('\n');
  await mustExec(fleet, host, 'rm -f /tmp/argv-scan.stop /tmp/argv-scan.ready');
  const running = fleet.exec(host, 'python3 -', { input: script, timeoutMs: 120_000 });
  await waitUntil(async () => (await fleet.exec(host, 'test -e /tmp/argv-scan.ready')).exitCode === 0);
  return {
    async stop() {
      await mustExec(fleet, host, 'touch /tmp/argv-scan.stop');
      const r = await running;
      expect(r.exitCode).toBe(0);
      return r.stdout.split('\n');
    },
  };
}

describeFleet('SSH activities on fleet hosts', () => {
  let fleet: Fleet;
  let direct: FleetHost;
  let bastion: FleetHost;
  let priv: FleetHost;

  beforeAll(async () => {
    fleet = await createFleet();
    [direct, bastion] = await Promise.all([
      fleet.addHost({ name: 'sshd1', topology: 'direct', bootstrapPassword: PASSWORD }),
      fleet.addHost({ name: 'sshb1', topology: 'bastion' }),
    ]);
    priv = await fleet.addHost({ name: 'sshp1', topology: 'private', bastion, bootstrapPassword: PASSWORD });
  });

  afterAll(async () => {
    await fleet?.destroy();
  });

  it('probes with a password full of shell metacharacters and captures the host key', async () => {
    const res = await activities.probeHost({ target: targetOf(direct) });
    expect(res.hostKeySha256).toBe(await fleet.hostKeySha256(direct));
    expect(res.viaHostKeySha256).toBeUndefined();
    expect(res.facts).toMatchObject({ hostname: direct.hostname, os: 'debian', initSystem: 'none' });
    expect(res.facts.python3).toMatch(/^3\.\d+/);
    expect(res.facts.osVersion).toMatch(/^\d+/);
    expect(res.facts.arch).toBe(execFileSync('uname', ['-m']).toString().trim()); // same kernel as this machine
    expect(res.facts.cpus).toBeGreaterThan(0);
    expect(res.facts.memoryMiB).toBeGreaterThan(0);
    expect(res.facts.diskRootGiB).toBeGreaterThan(0);

    // With the captured key pinned, the next contact is checked rather than trusted.
    const again = await activities.probeHost({ target: targetOf(direct, undefined, { hostKeySha256: res.hostKeySha256 }) });
    expect(again.hostKeySha256).toBe(res.hostKeySha256);
  });

  it('logs in with a private key (OpenSSH format) and with an encrypted key and its passphrase (OpenSSH and PEM)', async () => {
    const plain = generateEd25519({ comment: 'plain' });
    const encrypted = generateEd25519({ comment: 'enc', passphrase: 'open sesame', cipher: 'aes256-ctr', rounds: 16 });
    const rsa = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'pkcs1', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs1', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pem phrase' },
    });
    const rsaParsed = utils.parseKey(rsa.privateKey, 'pem phrase');
    if (rsaParsed instanceof Error) throw rsaParsed;
    const rsaPublic = `ssh-rsa ${rsaParsed.getPublicSSH().toString('base64')} pem`;
    expect(rsa.privateKey).toContain('ENCRYPTED');
    expect(() => createPrivateKey(rsa.privateKey)).toThrow(); // really needs the passphrase

    const keys = [plain.public, encrypted.public, rsaPublic].join('\n') + '\n';
    const u = direct.bootstrapUser;
    await mustExec(fleet, direct, `install -d -m 700 -o ${u} -g ${u} /home/${u}/.ssh && cat > /home/${u}/.ssh/authorized_keys && chown ${u}: /home/${u}/.ssh/authorized_keys`, keys);

    const creds: SshCredential[] = [
      { username: u, privateKey: sealSecret(keyring, plain.private) },
      { username: u, privateKey: sealSecret(keyring, encrypted.private), passphrase: sealSecret(keyring, 'open sesame') },
      { username: u, privateKey: sealSecret(keyring, rsa.privateKey), passphrase: sealSecret(keyring, 'pem phrase') },
    ];
    for (const credential of creds) {
      const s = await dialSsh(targetOf(direct, credential), { keyring });
      try {
        expect((await s.exec('id -un')).stdout.trim()).toBe(u);
      } finally {
        await s.close();
      }
    }

    const wrong = await failureOf(
      dialSsh(targetOf(direct, { ...creds[1], passphrase: sealSecret(keyring, 'not it') }), { keyring }),
    );
    expect(wrong.type).toBe('AuthFailed');
    expect(wrong.nonRetryable).toBe(true);
    expect(wrong.message).toMatch(/passphrase/);
    expect(wrong.message).not.toMatch(/PRIVATE KEY|not it/);
  });

  it('reports a wrong password as non-retryable AuthFailed, without the password', async () => {
    const f = await failureOf(activities.probeHost({ target: targetOf(direct, passwordCred(direct, 'wrong-password-123')) }));
    expect(f.type).toBe('AuthFailed');
    expect(f.nonRetryable).toBe(true);
    expect(JSON.stringify({ m: f.message, d: f.details })).not.toContain('wrong-password-123');
  });

  it('reports a port nobody listens on as retryable HostUnreachable', async () => {
    const f = await failureOf(activities.probeHost({ target: { ...targetOf(direct), port: direct.sshPort + 1 } }));
    expect(f.type).toBe('HostUnreachable');
    expect(f.nonRetryable).toBe(false);
    expect(f.details?.[0]).toMatchObject({ address: direct.address, port: direct.sshPort + 1, code: 'ECONNREFUSED' });
  });

  it('reaches a private host through the bastion, pinning both host keys', async () => {
    const via = targetOf(bastion, passwordCred(bastion), { hostKeySha256: await fleet.hostKeySha256(bastion) });
    const res = await activities.probeHost({ target: targetOf(priv, passwordCred(priv), { via }) });
    expect(res.hostKeySha256).toBe(await fleet.hostKeySha256(priv));
    expect(res.viaHostKeySha256).toBe(await fleet.hostKeySha256(bastion));
    expect(res.facts.hostname).toBe(priv.hostname);

    // A wrong pin on the jump host stops the dial at the jump host.
    const badVia = { ...via, hostKeySha256: res.hostKeySha256 };
    const mismatch = await failureOf(activities.probeHost({ target: targetOf(priv, passwordCred(priv), { via: badVia }) }));
    expect(mismatch.type).toBe('HostKeyMismatch');
    expect(mismatch.details?.[0]).toMatchObject({ hop: 'via', address: bastion.address, offered: res.viaHostKeySha256 });
  });

  it('creates cloudroot twice (idempotent) over sudo -S, with a validated sudoers drop-in and no secret in any argv', async () => {
    const target = targetOf(direct, passwordCred(direct), { hostKeySha256: await fleet.hostKeySha256(direct) });
    const scan = await scanArgv(fleet, direct);
    const first = await activities.createCloudroot({ hostId: 'host-direct', target });
    const second = await activities.createCloudroot({ hostId: 'host-direct', target });
    const argvs = await scan.stop();

    for (const r of [first, second]) {
      expect(r.username).toBe('cloudroot');
      expect(r.publicKey).toMatch(/^ssh-ed25519 \S+ agent-onboarding:host-direct$/);
      expect(r.privateKey.sealed).toMatch(/^v2\./);
      expect(JSON.stringify(r)).not.toContain('PRIVATE KEY');
    }
    expect(second.publicKey).not.toBe(first.publicKey);

    // End state: exactly the newest key, tight modes, a locked password, a drop-in that visudo accepts.
    const state = await mustExec(
      fleet,
      direct,
      'cat /home/cloudroot/.ssh/authorized_keys; echo ---; stat -c "%a %U" /home/cloudroot/.ssh /home/cloudroot/.ssh/authorized_keys ' +
        '/etc/sudoers.d/90-cloudroot; getent shadow cloudroot | cut -d: -f2; cat /etc/sudoers.d/90-cloudroot; ' +
        'visudo -cf /etc/sudoers.d/90-cloudroot >/dev/null && echo valid; ls -A /etc/sudoers.d; getent passwd cloudroot | cut -d: -f7',
    );
    const [keysPart, rest] = state.split('---\n');
    expect(keysPart.trim().split('\n')).toEqual([second.publicKey]);
    expect(rest.trim().split('\n')).toEqual([
      '700 cloudroot',
      '600 cloudroot',
      '440 root',
      '*',
      'cloudroot ALL=(ALL) NOPASSWD:ALL',
      'valid',
      '90-cloudroot',
      'README',
      '/bin/bash',
    ]);

    // The newest key works and has passwordless sudo; the replaced one is refused.
    const asCloudroot = (privateKey: string) =>
      dialSsh(target, { keyring, credentialOverride: { username: 'cloudroot', privateKey: sealSecret(keyring, privateKey) } });
    const s = await asCloudroot(unsealSecret(keyring, second.privateKey));
    try {
      expect((await s.exec('sudo -n true && sudo -n id -u')).stdout.trim()).toBe('0');
      expect(s.hostKeySha256).toBe(target.hostKeySha256);
    } finally {
      await s.close();
    }
    const old = await failureOf(asCloudroot(unsealSecret(keyring, first.privateKey)));
    expect(old.type).toBe('AuthFailed');

    // Secrets never in a command line: not in what we sent, not in any process seen on the host meanwhile.
    const privateKeys = [first, second].map((r) => unsealSecret(keyring, r.privateKey));
    const keyBodies = privateKeys.map((k) => k.split('\n')[1]);
    expect(argvs.some((a) => a.includes('sudo -k -S'))).toBe(true); // the scanner did see the run
    for (const line of [...argvs, ...sentCommands]) {
      expect(line).not.toContain(PASSWORD);
      expect(line).not.toContain('PRIVATE KEY');
      for (const body of keyBodies) expect(line).not.toContain(body);
    }
  });

  it('creates cloudroot on a private host through the bastion (sudo without password) and OpenSSH reaches it via a jump listener', async () => {
    // This bootstrap user has passwordless sudo: the other privilege path.
    await mustExec(fleet, priv, `echo '${priv.bootstrapUser} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/50-bootstrap && chmod 440 /etc/sudoers.d/50-bootstrap`);
    const via = targetOf(bastion);
    const target = targetOf(priv, passwordCred(priv), { via });
    const res = await activities.createCloudroot({ hostId: 'host-private', target });
    expect(res.username).toBe('cloudroot');

    const listener = await openJumpListener({ ...target, hostKeySha256: await fleet.hostKeySha256(priv) }, keyring);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ao-ssh-test-'));
    try {
      expect(listener.hostKeySha256).toBe(await fleet.hostKeySha256(bastion));
      expect(listener.targetHostKeySha256).toBe(await fleet.hostKeySha256(priv));
      const keyFile = path.join(dir, 'id');
      writeFileSync(keyFile, unsealSecret(keyring, res.privateKey), { mode: 0o600 });
      const knownHosts = path.join(dir, 'known_hosts');
      writeFileSync(knownHosts, `[127.0.0.1]:${listener.port} ${listener.targetHostPublicKey}\n`);
      const algorithm = listener.targetHostPublicKey.split(' ')[0];
      const { stdout } = await execFileAsync('ssh', [
        '-F', '/dev/null', '-i', keyFile, '-p', String(listener.port),
        '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=yes',
        '-o', `UserKnownHostsFile=${knownHosts}`, '-o', `HostKeyAlgorithms=${algorithm}`, '-o', 'ConnectTimeout=10',
        'cloudroot@127.0.0.1', 'sudo -n hostname',
      ]);
      expect(stdout.trim()).toBe(priv.hostname);
    } finally {
      await listener.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops at a changed host key with HostKeyMismatch naming both fingerprints', async () => {
    const before = await fleet.hostKeySha256(direct);
    await fleet.regenerateHostKeys(direct);
    const after = await fleet.hostKeySha256(direct);
    expect(after).not.toBe(before);
    const f = await failureOf(activities.probeHost({ target: targetOf(direct, passwordCred(direct), { hostKeySha256: before }) }));
    expect(f.type).toBe('HostKeyMismatch');
    expect(f.nonRetryable).toBe(true);
    expect(f.details?.[0]).toEqual({ expected: before, offered: after, address: direct.address, port: direct.sshPort, hop: 'target' });

    const cloudroot = await failureOf(
      activities.createCloudroot({ hostId: 'host-direct', target: targetOf(direct, passwordCred(direct), { hostKeySha256: before }) }),
    );
    expect(cloudroot.type).toBe('HostKeyMismatch');
  });
});
