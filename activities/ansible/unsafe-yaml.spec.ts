import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { toUnsafeYaml, UnsafeYamlError, yamlDoubleQuoted } from './unsafe-yaml';

/** The Python that runs ansible-playbook (its shebang), or undefined when Ansible is not installed. */
function ansiblePython(): string | undefined {
  try {
    const bin = execFileSync('sh', ['-c', 'command -v ansible-playbook'], { encoding: 'utf8' }).trim();
    const shebang = readFileSync(bin, 'utf8').split('\n')[0];
    const m = /^#!\s*(\S+)(?:\s+(\S+))?/.exec(shebang);
    if (!m) return undefined;
    return m[1].endsWith('/env') ? m[2] : m[1];
  } catch {
    return undefined;
  }
}

/**
 * Loads YAML with Ansible's own loader (what reads our vars files and inventories) and reports, as JSON, the data
 * and the path of every string (key or value) that did not come out as AnsibleUnsafe.
 */
const LOADER = `
import json, sys
from ansible.parsing.yaml.loader import AnsibleLoader
from ansible.utils.unsafe_proxy import AnsibleUnsafe
data = AnsibleLoader(sys.stdin.read()).get_single_data()
plain = []
def walk(v, where):
    if isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, AnsibleUnsafe): plain.append(where + ' key ' + repr(k))
            walk(x, where + '.' + str(k)[:20])
    elif isinstance(v, list):
        for i, x in enumerate(v): walk(x, '%s[%d]' % (where, i))
    elif isinstance(v, str) and not isinstance(v, AnsibleUnsafe):
        plain.append(where)
walk(data, '$')
def types(v):
    if isinstance(v, dict): return {k: types(x) for k, x in v.items()}
    if isinstance(v, list): return [types(x) for x in v]
    return type(v).__name__
# ensure_ascii keeps lone characters like U+2028 intact through the pipe
sys.stdout.write(json.dumps({'data': data, 'plain': plain, 'types': types(data)}, ensure_ascii=True))
`;

const python = ansiblePython();
const withAnsible = python ? it : it.skip;

function loadWithAnsible(yaml: string): { data: unknown; plain: string[]; types: unknown } {
  return JSON.parse(execFileSync(python!, ['-c', LOADER], { input: yaml, encoding: 'utf8' }));
}

/** Every character class that has bitten a YAML writer: indicators, quotes, escapes, line breaks of all kinds. */
const NASTY = [
  '',
  ' ',
  'plain',
  "{{ lookup('pipe', 'touch /tmp/x') }}",
  '{% for x in range(1) %}{% endfor %}',
  '{# c #}',
  'it\'s "quoted" \\ back\\slash',
  '# not a comment',
  'key: value',
  ': colon first',
  '- dash',
  '* star',
  '&anchor',
  '*alias',
  '!tag',
  '!!python/object/apply:os.system ["id"]',
  '%YAML 1.1',
  '@at',
  '`tick`',
  '|',
  '>',
  '? question',
  '[flow]',
  '{flow: map}',
  ',comma',
  '---',
  '...',
  'null',
  '~',
  'true',
  'no',
  'yes',
  'on',
  '0x1F',
  '012',
  '1e3',
  '1_000',
  '.inf',
  '.nan',
  '2001-12-14',
  '  leading and trailing  ',
  'line\nbreak',
  'crlf\r\nline',
  'tab\there',
  'nul\u0000byte',
  'bell\u0007 esc\u001b del\u007f',
  'c1 \u0080 nel\u0085 nbsp\u00a0',
  'ls\u2028ps\u2029',
  'bom\ufeff nonchar\ufffe\uffff',
  'bidi\u202e zw\u200b',
  'é ß 中文 العربية',
  'astral 😀 𝄞',
  '$HOME ${INFLUX_TOKEN} $$',
  '\\u0041 not an escape',
];

describe('yamlDoubleQuoted', () => {
  it.each([
    ['', '""'],
    ['a"b', '"a\\"b"'],
    ['a\\b', '"a\\\\b"'],
    ["it's", '"it\'s"'],
    ['a\nb\tc\rd', '"a\\nb\\tc\\rd"'],
    ['\u0000\u0007\u0008\u000b\u000c\u001b', '"\\0\\a\\b\\v\\f\\e"'],
    ['\u0001\u001f\u007f', '"\\x01\\x1F\\x7F"'],
    ['\u0085\u00a0é', '"\\x85\\xA0\\xE9"'],
    ['\u2028\u2029\ufeff', '"\\u2028\\u2029\\uFEFF"'],
    ['😀', '"\\U0001F600"'],
    ['#:-*&!%@{}[],|>?`~', '"#:-*&!%@{}[],|>?`~"'],
  ])('%j -> %s', (input, expected) => {
    expect(yamlDoubleQuoted(input)).toBe(expected);
  });

  it('writes ASCII only', () => {
    for (const s of NASTY) expect(yamlDoubleQuoted(s)).toMatch(/^[\x20-\x7e]*$/);
  });

  it('refuses lone surrogates (YAML has no form for them)', () => {
    expect(() => yamlDoubleQuoted('a\ud800b')).toThrow(UnsafeYamlError);
    expect(() => yamlDoubleQuoted('\udc00')).toThrow(UnsafeYamlError);
    expect(() => yamlDoubleQuoted('end\ud83d')).toThrow(UnsafeYamlError);
  });
});

describe('toUnsafeYaml', () => {
  it('tags every string, keys included, and leaves numbers, booleans and null plain', () => {
    expect(toUnsafeYaml({ a: 'x', n: 22, f: 0.5, t: true, z: null, l: ['y', 1] })).toBe(
      [
        '---',
        '? !unsafe "a"',
        ': !unsafe "x"',
        '? !unsafe "n"',
        ': 22',
        '? !unsafe "f"',
        ': 0.5',
        '? !unsafe "t"',
        ': true',
        '? !unsafe "z"',
        ': null',
        '? !unsafe "l"',
        ':',
        '  - !unsafe "y"',
        '  - 1',
        '',
      ].join('\n'),
    );
  });

  it('writes nested and empty collections', () => {
    expect(toUnsafeYaml({ m: { k: { deep: [[], {}, [{ a: 'b' }]] } }, e: {}, s: [] })).toBe(
      [
        '---',
        '? !unsafe "m"',
        ':',
        '  ? !unsafe "k"',
        '  :',
        '    ? !unsafe "deep"',
        '    :',
        '      - []',
        '      - {}',
        '      -',
        '        -',
        '          ? !unsafe "a"',
        '          : !unsafe "b"',
        '? !unsafe "e"',
        ': {}',
        '? !unsafe "s"',
        ': []',
        '',
      ].join('\n'),
    );
  });

  it('writes floats YAML 1.1 reads as floats', () => {
    const out = toUnsafeYaml({ a: 1e-7, b: 1e21, c: -2.5e300, d: 3, e: -0, f: NaN, g: Infinity, h: -Infinity, i: 10n });
    expect(out).toContain(': 1.0e-7\n');
    expect(out).toContain(': 1.0e+21\n');
    expect(out).toContain(': -2.5e+300\n');
    expect(out).toContain(': 3\n');
    expect(out).toContain(': 0\n');
    expect(out).toContain(': .nan\n');
    expect(out).toContain(': .inf\n');
    expect(out).toContain(': -.inf\n');
    expect(out).toContain(': 10\n');
  });

  it('drops undefined properties (as JSON does) and writes undefined array items as null', () => {
    expect(toUnsafeYaml({ a: undefined, b: [undefined] })).toBe('---\n? !unsafe "b"\n:\n  - null\n');
    expect(toUnsafeYaml({ a: undefined })).toBe('---\n{}\n');
  });

  it('refuses what it cannot write faithfully', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => toUnsafeYaml(cyclic)).toThrow(/cycle/);
    expect(() => toUnsafeYaml({ f: () => 1 })).toThrow(UnsafeYamlError);
    expect(() => toUnsafeYaml({ s: Symbol('x') })).toThrow(UnsafeYamlError);
    expect(() => toUnsafeYaml({ d: new Date(0) })).toThrow(/plain objects/);
    expect(() => toUnsafeYaml({ ['k\ud800']: 'v' })).toThrow(/surrogate/);
  });

  it('writes a shared (non-cyclic) object twice', () => {
    const shared = { v: 'x' };
    expect(toUnsafeYaml({ a: shared, b: shared })).toContain('? !unsafe "b"\n:\n  ? !unsafe "v"\n  : !unsafe "x"\n');
  });

  withAnsible('round-trips exactly through Ansible\'s loader, every string AnsibleUnsafe, ints still ints', () => {
    const labels = Object.fromEntries(NASTY.map((s, i) => [`${s}#${i}`, s]));
    const doc = {
      all: { hosts: { target: { ansible_host: '10.0.0.1', ansible_port: 22, ansible_user: 'cloudroot', ansible_ssh_common_args: '-F /dev/null -o X=y' } } },
      telegraf_labels: labels,
      values: NASTY,
      nested: [{ a: [NASTY[3], { b: NASTY[4] }] }, [], {}],
      numbers: { i: 7, neg: -3, f: 0.25, tiny: 1e-7, big: 1e21, t: true, f2: false, z: null },
      // Longer than the 1024 characters an implicit YAML key may have.
      [`${'k'.repeat(3000)}`]: 'v'.repeat(5000),
    };
    const { data, plain, types } = loadWithAnsible(toUnsafeYaml(doc));
    expect(plain).toEqual([]);
    expect(data).toEqual(doc);
    expect(types).toMatchObject({
      all: { hosts: { target: { ansible_port: 'int', ansible_host: 'AnsibleUnsafeText' } } },
      numbers: { i: 'int', f: 'float', tiny: 'float', big: 'float', t: 'bool', z: 'NoneType' },
    });
  });

  withAnsible('round-trips every BMP code point class and astral characters', () => {
    // One string per 1024-code-point block (surrogates excluded): every escape path, every block.
    const blocks: string[] = [];
    for (let start = 0; start < 0x10000; start += 1024) {
      let s = '';
      for (let c = start; c < start + 1024; c++) if (c < 0xd800 || c > 0xdfff) s += String.fromCharCode(c);
      blocks.push(s);
    }
    blocks.push('😀🏳️‍🌈𝄞\u{10FFFF}');
    const { data, plain } = loadWithAnsible(toUnsafeYaml({ blocks }));
    expect(plain).toEqual([]);
    expect(data).toEqual({ blocks });
  });
});
