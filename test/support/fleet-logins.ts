import type { ActivityDeps } from '../../activities/deps';
import { createSshActivities } from '../../activities/ssh';
import { sealSecret } from '../../lib/sealed-secret';
import type { SshCredential, SshTarget } from '../../workflows/contracts';
import type { Fleet, FleetHost } from '../fleet';

/** Runs a command as root on a fleet host; fails the test with its stderr when it exits non-zero. */
export async function mustExec(fleet: Fleet, host: FleetHost, command: string, input?: string): Promise<string> {
  const r = await fleet.exec(host, command, { input, timeoutMs: 60_000 });
  if (r.exitCode !== 0) throw new Error(`${command.slice(0, 80)} on ${host.name} failed: ${r.stderr}`);
  return r.stdout;
}

/** Logins to fleet hosts as activity tests use them, and a host taken to its cloudroot login by the real activities. */
export function fleetLogins(fleet: Fleet, deps: () => ActivityDeps) {
  const passwordLogin = (h: FleetHost): SshCredential => ({ username: h.bootstrapUser, password: sealSecret(deps().keyring, h.bootstrapPassword) });
  const loginOf = (h: FleetHost, extra: Partial<SshTarget> = {}): SshTarget => ({ address: h.address, port: h.sshPort, credential: passwordLogin(h), ...extra });
  return {
    passwordLogin,
    loginOf,
    /** The host's bootstrap login with its key pinned (a bastion as jump host or proxy). */
    pinnedLogin: async (h: FleetHost): Promise<SshTarget> => loginOf(h, { hostKeySha256: await fleet.hostKeySha256(h) }),
    /** probeHost → createCloudroot, as the onboarding does: the cloudroot login with the host key (and the jump host's) pinned. */
    async onboardCloudroot(host: FleetHost, hostId: string, via?: SshTarget): Promise<SshTarget> {
      const a = createSshActivities(deps());
      const probe = await a.probeHost({ target: loginOf(host, via ? { via } : {}) });
      const pinned = loginOf(host, {
        hostKeySha256: probe.hostKeySha256,
        ...(via ? { via: { ...via, hostKeySha256: probe.viaHostKeySha256 } } : {}),
      });
      const cloudroot = await a.createCloudroot({ hostId, target: pinned });
      return { ...pinned, credential: { username: cloudroot.username, privateKey: cloudroot.privateKey } };
    },
  };
}

/** The three places an SSH activity runs: a direct host, a bastion, and a private host behind that bastion. */
export async function addDirectBastionPrivate(fleet: Fleet, prefix: string): Promise<{ direct: FleetHost; bastion: FleetHost; priv: FleetHost }> {
  const [direct, bastion] = await Promise.all([
    fleet.addHost({ name: `${prefix}d1`, topology: 'direct' }),
    fleet.addHost({ name: `${prefix}b1`, topology: 'bastion' }),
  ]);
  const priv = await fleet.addHost({ name: `${prefix}p1`, topology: 'private', bastion });
  return { direct, bastion, priv };
}
