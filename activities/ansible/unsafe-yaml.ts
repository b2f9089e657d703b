/**
 * YAML for Ansible in which no string is ever a template. Ansible templates every string it reads from vars
 * files and inventories (`{{ lookup('pipe', …) }}` runs a command on the controller); a scalar tagged `!unsafe`
 * is kept as data through every later templating, `set_fact` and filter. So every string here, mapping keys
 * included, is written as `!unsafe "<double-quoted>"`; numbers, booleans and null stay plain YAML scalars
 * (a tagged scalar would be a string: `ansible_port` must stay an int).
 *
 * The output is ASCII: printable ASCII is written as is (except `"` and `\`), everything else as a YAML escape,
 * so no reader can take a character for a line break (NEL, U+2028/U+2029), a byte-order mark or an indicator.
 * Keys are explicit (`? key`), which has no length limit (implicit keys stop at 1024 characters). Block style,
 * two spaces per level; empty collections are `{}` / `[]`.
 */

export class UnsafeYamlError extends TypeError {
  override name = 'UnsafeYamlError';
}

const NAMED_ESCAPES: Record<number, string> = {
  0x00: '\\0',
  0x07: '\\a',
  0x08: '\\b',
  0x09: '\\t',
  0x0a: '\\n',
  0x0b: '\\v',
  0x0c: '\\f',
  0x0d: '\\r',
  0x1b: '\\e',
  0x22: '\\"',
  0x5c: '\\\\',
};

function hex(n: number, width: number): string {
  return n.toString(16).toUpperCase().padStart(width, '0');
}

/** A YAML double-quoted scalar (without tag) holding exactly `text`. Lone surrogates have no YAML form. */
export function yamlDoubleQuoted(text: string): string {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdfff) {
      const next = text.charCodeAt(i + 1);
      if (unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        out += `\\U${hex(text.codePointAt(i)!, 8)}`;
        i++;
        continue;
      }
      throw new UnsafeYamlError(`a string holds a lone UTF-16 surrogate at index ${i}, which YAML cannot represent`);
    }
    const named = NAMED_ESCAPES[unit];
    if (named) out += named;
    else if (unit >= 0x20 && unit <= 0x7e) out += text[i];
    else if (unit <= 0xff) out += `\\x${hex(unit, 2)}`;
    else out += `\\u${hex(unit, 4)}`;
  }
  return out + '"';
}

function unsafeString(text: string): string {
  return `!unsafe ${yamlDoubleQuoted(text)}`;
}

/** YAML 1.1 (what Ansible's PyYAML reads) calls `1e5` a string: floats need a dot, exponents a sign. */
function yamlNumber(n: number): string {
  if (Number.isNaN(n)) return '.nan';
  if (n === Infinity) return '.inf';
  if (n === -Infinity) return '-.inf';
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return n.toFixed(0);
  const [mantissa, exponent] = String(n).split('e');
  const withDot = mantissa.includes('.') ? mantissa : `${mantissa}.0`;
  return exponent === undefined ? withDot : `${withDot}e${/^[-+]/.test(exponent) ? exponent : `+${exponent}`}`;
}

function isPlainObject(v: object): v is Record<string, unknown> {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** A scalar's text, or undefined when `value` is a collection. */
function scalar(value: unknown, where: string): string | undefined {
  switch (typeof value) {
    case 'string':
      return unsafeString(value);
    case 'number':
      return yamlNumber(value);
    case 'bigint':
      return value.toString();
    case 'boolean':
      return value ? 'true' : 'false';
    case 'undefined':
      return 'null';
    case 'object':
      if (value === null) return 'null';
      if (Array.isArray(value)) return value.length === 0 ? '[]' : undefined;
      if (!isPlainObject(value)) throw new UnsafeYamlError(`${where}: only plain objects, arrays and primitives can be written`);
      return Object.values(value).some((v) => v !== undefined) ? undefined : '{}';
    default:
      throw new UnsafeYamlError(`${where}: a ${typeof value} cannot be written as YAML`);
  }
}

/** Lines of `value` as a block node at `indent`; the caller puts the first line after its indicator when it is a scalar. */
function node(value: unknown, indent: string, where: string, seen: Set<object>): { inline: string } | { lines: string[] } {
  const s = scalar(value, where);
  if (s !== undefined) return { inline: s };
  const obj = value as object;
  if (seen.has(obj)) throw new UnsafeYamlError(`${where}: a cycle cannot be written`);
  seen.add(obj);
  const lines: string[] = [];
  const child = (v: unknown, w: string, indicator: string) => {
    const n = node(v, indent + '  ', w, seen);
    if ('inline' in n) lines.push(`${indent}${indicator} ${n.inline}`);
    else lines.push(`${indent}${indicator}`, ...n.lines);
  };
  if (Array.isArray(obj)) {
    obj.forEach((v, i) => child(v, `${where}[${i}]`, '-'));
  } else {
    for (const [k, v] of Object.entries(obj)) {
      if (v === undefined) continue; // as JSON.stringify: an undefined property is no property
      lines.push(`${indent}? ${unsafeString(k)}`);
      child(v, `${where}.${k.length > 40 ? k.slice(0, 40) + '…' : k}`, ':');
    }
  }
  seen.delete(obj);
  return { lines };
}

/**
 * One YAML document holding `value` (usually a mapping), every string tagged `!unsafe`. Throws UnsafeYamlError
 * for what has no faithful YAML form here (functions, symbols, class instances, cycles, lone surrogates).
 */
export function toUnsafeYaml(value: unknown): string {
  const n = node(value, '', '$', new Set());
  return '---\n' + ('inline' in n ? n.inline + '\n' : n.lines.join('\n') + '\n');
}
