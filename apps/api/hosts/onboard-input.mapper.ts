import type { OnboardHostInput, SealedSecret, SshCredential, SshTarget } from '../../../workflows/contracts';
import type { SealingKeySource } from '../../../lib/keyring';
import { sealSecret } from '../../../lib/sealed-secret';
import type { BastionDto } from './dto/bastion.dto';
import type { CreateHostDto } from './dto/create-host.dto';
import type { SshLoginDto } from './dto/ssh-login.dto';

export interface MappingContext {
  /** Seals with public keys only: the API cannot open what it seals. */
  sealer: SealingKeySource;
  /** Seals instead of `sealer` (a fleet seals a secret shared by its hosts once). */
  seal?: Seal;
  /** InfluxDB URL for dataPath "direct" when the request names none (config.influx.url). */
  defaultInfluxUrl: string;
}

import { deriveHostId } from '../../../lib/host-address';
export { RESERVED_HOST_ID_PREFIX, canonicalIpv6, deriveHostId } from '../../../lib/host-address';

export type Seal = (plaintext: string) => SealedSecret;

/** A seal that seals each distinct secret once (within one request: a fleet's shared password is one sealed value). */
export function sealingOnce(sealer: SealingKeySource): Seal {
  const sealed = new Map<string, SealedSecret>();
  return (plaintext) => {
    let s = sealed.get(plaintext);
    if (!s) sealed.set(plaintext, (s = sealSecret(sealer, plaintext)));
    return s;
  };
}

/** Seals every secret right away: from here on only SealedSecret values exist. */
export function toSshCredential(login: SshLoginDto, sealer: SealingKeySource | Seal): SshCredential {
  const seal: Seal = typeof sealer === 'function' ? sealer : (p) => sealSecret(sealer, p);
  const credential: SshCredential = { username: login.username };
  if (login.password != null) credential.password = seal(login.password);
  if (login.privateKey != null) credential.privateKey = seal(login.privateKey);
  if (login.passphrase != null) credential.passphrase = seal(login.passphrase);
  return credential;
}

function toBastionTarget(bastion: BastionDto, sealer: SealingKeySource | Seal): SshTarget {
  const target: SshTarget = { address: bastion.address, port: bastion.port ?? 22, credential: toSshCredential(bastion, sealer) };
  if (bastion.hostKeySha256) target.hostKeySha256 = bastion.hostKeySha256;
  return target;
}

export function toOnboardHostInput(dto: CreateHostDto, ctx: MappingContext): OnboardHostInput {
  const port = dto.port ?? 22;
  const hostId = dto.hostId ?? deriveHostId(dto.address, port);
  const sealer = ctx.seal ?? ctx.sealer;
  const via = dto.bastion ? toBastionTarget(dto.bastion, sealer) : undefined;
  const target: SshTarget = { address: dto.address, port, credential: toSshCredential(dto, sealer) };
  if (dto.expectedHostKeySha256) target.hostKeySha256 = dto.expectedHostKeySha256;
  if (via) target.via = via;

  let dataPath: OnboardHostInput['dataPath'];
  switch (dto.dataPath ?? 'tunnel') {
    case 'direct':
      dataPath = { kind: 'direct', influxUrl: dto.influxUrl ?? ctx.defaultInfluxUrl };
      break;
    case 'proxy':
      // Validation guarantees a bastion here; it is both the jump host and the proxy.
      if (!via) throw new Error('dataPath "proxy" needs a bastion');
      // Without a bind address the workflow binds the bastion's address as the host sees it (found by the probe).
      dataPath = { kind: 'proxy', proxy: via, ...(dto.proxyBindAddress ? { bindAddress: dto.proxyBindAddress } : {}) };
      break;
    default:
      dataPath = { kind: 'tunnel' };
  }

  const input: OnboardHostInput = { hostId, target, dataPath, agent: { mode: dto.agentMode ?? 'artifact' } };
  if (dto.labels && Object.keys(dto.labels).length > 0) input.labels = { ...dto.labels };
  return input;
}
