import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import type { OnboardHostInput } from '../../../workflows/contracts';
import { compactMembers } from '../../../workflows/fleet/members';
import type { FleetCorrections, FleetDefaults, FleetInput } from '../../../workflows/fleet/messages';
import type { FleetSource } from '../../../workflows/fleet/source';
import { validationFailed, type FieldError } from '../common/api-error';
import { flattenValidationErrors } from '../common/validation';
import { CreateHostDto } from '../hosts/dto/create-host.dto';
import { sealingOnce, toOnboardHostInput, toSshCredential, type MappingContext } from '../hosts/onboard-input.mapper';
import type { CreateFleetDto } from './dto/create-fleet.dto';
import type { RetryFleetDto } from './dto/retry-fleet.dto';

export interface FleetMappingContext extends MappingContext {
  /** Hosts onboarding at once when the request names none. */
  defaultConcurrency: number;
}

const SECRETS = ['password', 'privateKey', 'passphrase'] as const;
/** Fields only a host can have: defaults are for what hosts share. */
const HOST_ONLY = ['address', 'hostId', 'expectedHostKeySha256'] as const;
/** Errors listed at most (a 5,000-host fleet with one bad default must not answer with 5,000 errors). */
const MAX_ERRORS = 50;

const VALIDATION = { whitelist: true, forbidNonWhitelisted: true, forbidUnknownValues: true, validationError: { target: false, value: false } } as const;

/** One host as `POST /v1/hosts` would take it: the defaults, then the host's own fields (its secrets replace the defaults'). */
export function mergeHost(defaults: Record<string, unknown>, host: Record<string, unknown>): Record<string, unknown> {
  const d: Record<string, unknown> = { ...defaults };
  if (host.password !== undefined || host.privateKey !== undefined) for (const k of SECRETS) delete d[k];
  const merged: Record<string, unknown> = { ...d, ...host };
  const dl = defaults.labels;
  const hl = host.labels;
  if (isPlainObject(dl) && isPlainObject(hl)) merged.labels = { ...dl, ...hl };
  return merged;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The fleet's workflow input from the request: every host merged with the defaults and checked with the rules of a
 * single host (errors name `hosts.<i>.field`, or `defaults.field` when the value came from there), each secret sealed
 * once, members kept as what differs from the defaults.
 */
export function toFleetInput(dto: CreateFleetDto, ctx: FleetMappingContext): FleetInput {
  const defaults = dto.defaults ?? {};
  const errors: FieldError[] = [];
  const seen = new Set<string>();
  const push = (e: FieldError) => {
    if (errors.length >= MAX_ERRORS || seen.has(`${e.field}:${Object.keys(e.constraints).join()}`)) return;
    seen.add(`${e.field}:${Object.keys(e.constraints).join()}`);
    errors.push(e);
  };
  for (const k of HOST_ONLY) if (defaults[k] !== undefined) push({ field: `defaults.${k}`, constraints: { hostOnly: `${k} is per host, not a default` } });

  const seal = sealingOnce(ctx.sealer);
  const inputs: OnboardHostInput[] = [];
  const ids = new Map<string, number>();
  (dto.hosts ?? []).forEach((host, i) => {
    const merged = mergeHost(defaults, host);
    const instance = plainToInstance(CreateHostDto, merged);
    const found = flattenValidationErrors(validateSync(instance, VALIDATION));
    for (const e of found) {
      const top = e.field.split('.')[0];
      push({ field: top in host || !(top in defaults) ? `hosts.${i}.${e.field}` : `defaults.${e.field}`, constraints: e.constraints });
    }
    if (found.length > 0) return;
    const input = toOnboardHostInput(instance, { ...ctx, seal });
    const before = ids.get(input.hostId);
    if (before !== undefined) {
      push({ field: `hosts.${i}.hostId`, constraints: { unique: `host id ${input.hostId} is also hosts.${before} (same address and port, or the same hostId)` } });
      return;
    }
    ids.set(input.hostId, i);
    inputs.push(input);
  });
  if (errors.length > 0) throw validationFailed(errors);

  // What the first host has is what the fleet shares (the defaults made it); the others keep what differs.
  const { hostId: _hostId, ...first } = inputs[0];
  const { hostKeySha256: _pin, ...firstTarget } = first.target;
  const fleetDefaults: FleetDefaults = { ...first, target: { ...firstTarget, address: '' } };
  if (dto.unreachableAfterSeconds) fleetDefaults.timing = { probeBudgetMs: dto.unreachableAfterSeconds * 1000 };
  return { fleetId: dto.name, defaults: fleetDefaults, members: compactMembers(fleetDefaults, inputs), concurrency: dto.concurrency ?? ctx.defaultConcurrency };
}

/** Checks the defaults of a source fleet with this address (documentation range: never contacted). */
const PLACEHOLDER_ADDRESS = '192.0.2.1';

/**
 * A fleet whose members come from a source: the defaults must be a whole host request but the address (each host
 * the source lists gets them), checked and sealed now; the members start empty (the first reconcile pass adds them).
 */
export function toSourceFleetInput(dto: CreateFleetDto, ctx: FleetMappingContext): FleetInput {
  const defaults = dto.defaults ?? {};
  const errors: FieldError[] = [];
  for (const k of HOST_ONLY) if (defaults[k] !== undefined) errors.push({ field: `defaults.${k}`, constraints: { hostOnly: `${k} is per host, not a default` } });
  const instance = plainToInstance(CreateHostDto, { ...defaults, address: PLACEHOLDER_ADDRESS });
  for (const e of flattenValidationErrors(validateSync(instance, VALIDATION))) errors.push({ field: `defaults.${e.field}`, constraints: e.constraints });
  if (errors.length > 0) throw validationFailed(errors.slice(0, MAX_ERRORS));
  const { hostId: _hostId, ...shared } = toOnboardHostInput(instance, { ...ctx, seal: sealingOnce(ctx.sealer) });
  const fleetDefaults: FleetDefaults = { ...shared, target: { ...shared.target, address: '' } };
  if (dto.unreachableAfterSeconds) fleetDefaults.timing = { probeBudgetMs: dto.unreachableAfterSeconds * 1000 };
  return {
    fleetId: dto.name,
    defaults: fleetDefaults,
    members: [],
    concurrency: dto.concurrency ?? ctx.defaultConcurrency,
    ...(dto.source ? { source: sourceOf(dto.source) } : {}),
    ...(dto.maxOffboardShare !== undefined ? { maxOffboardShare: dto.maxOffboardShare } : {}),
  };
}

function sourceOf(s: NonNullable<CreateFleetDto['source']>): FleetSource {
  if (s.kind === 'http') return { kind: 'http', url: s.url! };
  if (s.kind === 'file') return { kind: 'file', path: s.path! };
  return { kind: 'ansible-inventory', path: s.path!, ...(s.group ? { group: s.group } : {}) };
}

/** A retry's corrections, sealed (the request's plaintext goes no further than here). */
export function toFleetCorrections(dto: RetryFleetDto, ctx: MappingContext): FleetCorrections | undefined {
  const c: FleetCorrections = {};
  if (dto.credential) c.credential = toSshCredential(dto.credential, ctx.sealer);
  if (dto.port !== undefined) c.port = dto.port;
  if (dto.bastion) {
    const b = dto.bastion;
    c.via = { address: b.address, port: b.port ?? 22, credential: toSshCredential(b, ctx.sealer), ...(b.hostKeySha256 ? { hostKeySha256: b.hostKeySha256 } : {}) };
  }
  return Object.keys(c).length > 0 ? c : undefined;
}
