import { isIP } from 'node:net';
import { registerDecorator, type ValidationArguments, type ValidationOptions } from 'class-validator';
import { utils as sshUtils } from 'ssh2';

/** C0/C1 controls, DEL, and bidi/zero-width format characters: never valid in any text field. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/;
/** Same, but PEM/OpenSSH keys are multi-line. */
// eslint-disable-next-line no-control-regex -- as above
const CONTROL_EXCEPT_NEWLINES = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/;

import { HOSTNAME_PATTERN, TEMPLATE_MESSAGE, hasTemplateSyntax, labelsProblem, urlProblem } from '../../../workflows/input-rules';

// The rules the workflows and activities apply too: one definition (workflows/input-rules.ts).
export {
  AGENT_VERSION_PATTERN,
  FINGERPRINT_PATTERN,
  HOST_ID_PATTERN,
  HOSTNAME_PATTERN,
  INTERVAL_PATTERN,
  LABEL_KEY_PATTERN,
  LABEL_VALUE_PATTERN,
  MAX_LABELS,
  RESERVED_LABEL_KEYS,
  USERNAME_PATTERN,
  hasTemplateSyntax,
  labelProblem,
  labelsProblem,
  urlProblem,
} from '../../../workflows/input-rules';

export const MAX_PRIVATE_KEY_LENGTH = 16_384;

export function hasControlChars(value: string, allowNewlines = false): boolean {
  return (allowNewlines ? CONTROL_EXCEPT_NEWLINES : CONTROL).test(value);
}

export function isHostAddress(value: unknown): boolean {
  if (typeof value !== 'string' || value.length === 0 || value.length > 253) return false;
  if (value.includes('%')) return false; // IPv6 zone ids: free text, and meaningless off this machine
  return isIP(value) !== 0 || (HOSTNAME_PATTERN.test(value) && !/^[0-9.]+$/.test(value));
}

function decorator(
  name: string,
  validate: (value: unknown, args: ValidationArguments) => boolean,
  defaultMessage: (args: ValidationArguments) => string,
  options?: ValidationOptions,
) {
  return (object: object, propertyName: string) =>
    registerDecorator({
      name,
      target: object.constructor,
      propertyName,
      options,
      validator: { validate, defaultMessage },
    });
}

export function NoControlChars(opts: { allowNewlines?: boolean } = {}, options?: ValidationOptions) {
  return decorator(
    'noControlChars',
    (v) => typeof v !== 'string' || !hasControlChars(v, opts.allowNewlines),
    (a) => `${a.property} must not contain control characters`,
    options,
  );
}

export function IsHostAddress(options?: ValidationOptions) {
  return decorator('isHostAddress', isHostAddress, (a) => `${a.property} must be an IPv4 address, an IPv6 address or a DNS name`, options);
}

export type KeyProblem = 'not-a-string' | 'too-long' | 'needs-passphrase' | 'bad-passphrase' | 'public-key' | 'unparseable';

/** Parses with ssh2 (the library that will use the key) so an unusable key fails now, not in the workflow. */
export function checkPrivateKey(key: unknown, passphrase: unknown): KeyProblem | null {
  if (typeof key !== 'string') return 'not-a-string';
  if (key.length > MAX_PRIVATE_KEY_LENGTH) return 'too-long';
  const pass = typeof passphrase === 'string' && passphrase.length > 0 ? passphrase : undefined;
  let parsed: ReturnType<typeof sshUtils.parseKey>;
  try {
    parsed = sshUtils.parseKey(key, pass);
  } catch {
    return 'unparseable';
  }
  if (parsed instanceof Error) {
    // ssh2's messages are fixed strings (never key material), but we only classify them.
    const msg = parsed.message.toLowerCase();
    if (msg.includes('no passphrase')) return 'needs-passphrase';
    if (msg.includes('passphrase') || msg.includes('bad decrypt') || msg.includes('decrypt')) return pass ? 'bad-passphrase' : 'needs-passphrase';
    return 'unparseable';
  }
  const first = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!first) return 'unparseable';
  if (!first.isPrivateKey()) return 'public-key';
  return null;
}

const KEY_MESSAGES: Record<KeyProblem, string> = {
  'not-a-string': 'must be a string',
  'too-long': `must be at most ${MAX_PRIVATE_KEY_LENGTH} characters`,
  'needs-passphrase': 'is encrypted: a passphrase is required',
  'bad-passphrase': 'could not be decrypted with the given passphrase',
  'public-key': 'is a public key: a private key is required',
  unparseable: 'must be a PEM or OpenSSH private key',
};

/** `passphraseProperty` names the sibling property holding the key's passphrase. */
export function IsSshPrivateKey(passphraseProperty: string, options?: ValidationOptions) {
  return decorator(
    'isSshPrivateKey',
    (v, a) => checkPrivateKey(v, (a.object as Record<string, unknown>)[passphraseProperty]) === null,
    (a) => `${a.property} ${KEY_MESSAGES[checkPrivateKey(a.value, (a.object as Record<string, unknown>)[passphraseProperty]) ?? 'unparseable']}`,
    options,
  );
}

/** Exactly one of two properties must be present (password xor privateKey). */
export function ExactlyOneOf(a: string, b: string, options?: ValidationOptions) {
  return decorator(
    'exactlyOneOf',
    (_v, args) => {
      const o = args.object as Record<string, unknown>;
      return (o[a] !== undefined) !== (o[b] !== undefined);
    },
    () => `exactly one of ${a} or ${b} is required`,
    options,
  );
}

/** The property may only be set when `predicate(object)` holds (e.g. passphrase only with privateKey). */
export function OnlyWhen(predicate: (o: Record<string, unknown>) => boolean, explanation: string, options?: ValidationOptions) {
  return decorator(
    'onlyWhen',
    (v, args) => v === undefined || predicate(args.object as Record<string, unknown>),
    (args) => `${args.property} ${explanation}`,
    options,
  );
}

export function IsLabelMap(options?: ValidationOptions) {
  return decorator(
    'isLabelMap',
    (v) => labelMapProblem(v) === null,
    (a) => `${a.property} ${labelMapProblem(a.value) ?? 'is invalid'}`,
    options,
  );
}

export function labelMapProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be an object of string pairs';
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) return 'must be a plain object';
  return labelsProblem(value as Record<string, unknown>);
}

/**
 * Rejects Jinja delimiters (`{{ }}`, `{% %}`, `{# #}`, either end) in a string that can reach Ansible, a template
 * or a file on a host. Ansible gets every value tagged `!unsafe` anyway; this keeps such text out of the system
 * and tells the caller why. Not for secrets (password, privateKey, passphrase): they only reach ssh2 and sudo's stdin.
 */
export function NoTemplateSyntax(options?: ValidationOptions) {
  return decorator(
    'noTemplateSyntax',
    (v) => typeof v !== 'string' || !hasTemplateSyntax(v),
    (a) => `${a.property} ${TEMPLATE_MESSAGE}`,
    options,
  );
}

/** An http(s) URL that is written into a host's configuration (see urlProblem in workflows/input-rules.ts). */
export function IsConfigSafeUrl(options?: ValidationOptions) {
  return decorator(
    'isConfigSafeUrl',
    (v) => typeof v !== 'string' || urlProblem(v) === null,
    (a) => `${a.property} ${typeof a.value === 'string' ? (urlProblem(a.value) ?? 'is invalid') : 'must be a string'}`,
    options,
  );
}

/** A cross-field rule on one property: `ok(value, object)` must hold. */
export function Check(
  name: string,
  ok: (value: unknown, o: Record<string, unknown>) => boolean,
  message: string,
  options?: ValidationOptions,
) {
  return decorator(name, (v, args) => ok(v, args.object as Record<string, unknown>), (args) => `${args.property} ${message}`, options);
}
