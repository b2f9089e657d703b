/**
 * The one set of rules for input that travels from the API through workflows into activities, Ansible and the
 * files written on hosts. Pure (no imports at all) so the API, the workflow sandbox and activities share it:
 * a value the API accepts is a value the activity accepts.
 */

/** Host ids (also tunnel ids): workflow ids, Telegraf's `host_id` tag, file-name safe. */
export const HOST_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/**
 * DNS names as host addresses: labels of letters, digits and inner `-`, at most 253 characters, an optional final
 * dot. (Callers also refuse names that are only digits and dots: those are malformed IPv4 addresses.)
 */
export const HOSTNAME_PATTERN = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** An OpenSSH SHA256 host-key fingerprint as `ssh-keygen -lf` prints it. */
export const FINGERPRINT_PATTERN = /^SHA256:[A-Za-z0-9+/]{43}$/;

/** POSIX portable user names (no leading dash), as useradd accepts them. */
export const USERNAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;

/**
 * Label keys become Telegraf global tags (quoted TOML keys) and InfluxDB tag keys. Letters, digits and `_ . / -`,
 * starting and ending with a letter or digit: no leading `_` (InfluxDB 2 reserves that namespace for
 * `_measurement`, `_field`, …), nothing a shell, a template or line protocol treats specially.
 */
export const LABEL_KEY_PATTERN = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$/;

/** Keys the agent sets itself (`host_id`: ours, `host`: Telegraf's) or InfluxDB refuses as a tag key (`time`). */
export const RESERVED_LABEL_KEYS: readonly string[] = ['host_id', 'host', 'time'];

/** Label values: Telegraf tag values. No quotes, backslashes, braces, `$` or line breaks. */
export const LABEL_VALUE_PATTERN = /^[A-Za-z0-9 ._:/@+=,-]{0,255}$/;

export const MAX_LABELS = 32;

/** Telegraf durations as the role writes them (`interval = "10s"`). */
export const INTERVAL_PATTERN = /^[1-9][0-9]{0,5}(ms|s|m|h)$/;

/** A Debian package version to pin Telegraf to in repo mode ("1.39.3-1"): no spaces, quotes, globs or template text. */
export const AGENT_VERSION_PATTERN = /^[0-9][0-9A-Za-z.+~-]{0,63}$/;

/** Jinja delimiters (Ansible templates every string it is given unless it is marked unsafe). */
const TEMPLATE_SYNTAX = /\{\{|\{%|\{#|\}\}|%\}|#\}/;

export const TEMPLATE_MESSAGE = 'must not contain template syntax ({{ }}, {% %}, {# #})';

/** True when `value` holds a Jinja delimiter: `{{ }}`, `{% %}` or `{# #}` (either end). */
export function hasTemplateSyntax(value: string): boolean {
  return TEMPLATE_SYNTAX.test(value);
}

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const URL_FORBIDDEN = /[\s"'`\\{}$<>^|\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/u;

/**
 * Why an http(s) URL that ends up in a config file on a host (Telegraf's output URL) is unusable, or null.
 * Besides template syntax: no whitespace, quotes, backslashes, braces, `$` (Telegraf substitutes `${VAR}` from its
 * environment, which holds the write token), `<>^|` or control characters, and no user info.
 */
export function urlProblem(value: string): string | null {
  if (value.length === 0 || value.length > 2048) return 'must be an http(s) URL of at most 2048 characters';
  if (hasTemplateSyntax(value)) return TEMPLATE_MESSAGE;
  if (URL_FORBIDDEN.test(value)) return 'must not contain whitespace, quotes, backslashes, braces, $, <, >, ^, | or control characters';
  const m = /^(https?):\/\/([^/?#]*)/i.exec(value);
  if (!m) return 'must be an http(s) URL';
  if (m[2].includes('@')) return 'must not contain credentials';
  if (m[2].length === 0) return 'must name a host';
  return null;
}

/** Why a label (key, value) pair is unusable, or null. Messages never quote the input. */
export function labelProblem(key: string, value: unknown): string | null {
  if (hasTemplateSyntax(key)) return `key ${TEMPLATE_MESSAGE}`;
  if (!LABEL_KEY_PATTERN.test(key)) return `key must match ${LABEL_KEY_PATTERN}`;
  if (RESERVED_LABEL_KEYS.includes(key)) return `key must not be one of ${RESERVED_LABEL_KEYS.join(', ')} (reserved)`;
  if (typeof value !== 'string') return 'value must be a string';
  if (hasTemplateSyntax(value)) return `value ${TEMPLATE_MESSAGE}`;
  if (!LABEL_VALUE_PATTERN.test(value)) return `value must match ${LABEL_VALUE_PATTERN}`;
  return null;
}

/** Why a label map is unusable, or null; names the failing entry by position (keys are input too). */
export function labelsProblem(labels: Record<string, unknown>): string | null {
  const entries = Object.entries(labels);
  if (entries.length > MAX_LABELS) return `must have at most ${MAX_LABELS} entries`;
  for (let i = 0; i < entries.length; i++) {
    const problem = labelProblem(entries[i][0], entries[i][1]);
    if (problem) return `entry #${i + 1}: ${problem}`;
  }
  return null;
}
