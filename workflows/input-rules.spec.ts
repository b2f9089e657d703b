import {
  HOST_ID_PATTERN, INTERVAL_PATTERN, LABEL_KEY_PATTERN, MAX_LABELS, hasTemplateSyntax, labelProblem, labelsProblem, urlProblem,
} from './input-rules';

describe('hasTemplateSyntax', () => {
  it.each([
    "{{ lookup('pipe','id') }}",
    '{%raw%}',
    '{# c #}',
    'a}}b',
    'a%}b',
    'a#}b',
    'x{{',
    '{{',
  ])('finds a delimiter in %j', (s) => expect(hasTemplateSyntax(s)).toBe(true));

  it.each(['', 'plain', '{ x }', '{x}', '} }', '%{x}', '#{x}', 'a{b}c', '{ {', '50%', '#1'])('finds none in %j', (s) =>
    expect(hasTemplateSyntax(s)).toBe(false),
  );
});

describe('labelProblem', () => {
  it.each([
    ['env', 'prod'],
    ['team/owner', 'infra ops'],
    ['app.kubernetes.io/name', 'web'],
    ['1st', 'x'],
    ['a_b-c.d', ''],
    ['k'.repeat(63), 'v'.repeat(255)],
    ['zone', 'eu-west-1:a@b+c=d,e'],
  ])('accepts %j = %j', (k, v) => expect(labelProblem(k, v)).toBeNull());

  it.each([
    ["{{ lookup('pipe','id') }}", 'v', /key must not contain template syntax/],
    ['{%x%}', 'v', /key must not contain template syntax/],
    ['k', "{{ lookup('pipe','id') }}", /value must not contain template syntax/],
    ['k', '{# c #}', /value must not contain template syntax/],
    ['_measurement', 'v', /key must match/],
    ['-x', 'v', /key must match/],
    ['x-', 'v', /key must match/],
    ['a b', 'v', /key must match/],
    ['a"b', 'v', /key must match/],
    ['a$b', 'v', /key must match/],
    ['é', 'v', /key must match/],
    ['', 'v', /key must match/],
    ['k'.repeat(64), 'v', /key must match/],
    ['host_id', 'v', /reserved/],
    ['host', 'v', /reserved/],
    ['time', 'v', /reserved/],
    ['k', 1, /value must be a string/],
    ['k', 'a"b', /value must match/],
    ['k', 'a\\b', /value must match/],
    ['k', "it's", /value must match/],
    ['k', 'a\nb', /value must match/],
    ['k', '${INFLUX_TOKEN}', /value must match/],
    ['k', '$(id)', /value must match/],
    ['k', '`id`', /value must match/],
    ['k', 'a;b', /value must match/],
    ['k', 'v'.repeat(256), /value must match/],
  ])('refuses %j = %j', (k, v, message) => expect(labelProblem(k, v)).toMatch(message));

  it('never quotes the rejected input', () => {
    expect(labelProblem('k', 'SECRET"')).not.toContain('SECRET');
    expect(labelProblem('SECRET KEY', 'v')).not.toContain('SECRET');
  });
});

describe('labelsProblem', () => {
  it('names the failing entry by position', () => {
    expect(labelsProblem({ a: 'x', b: 'ok', 'c d': 'x' })).toBe(`entry #3: key must match ${LABEL_KEY_PATTERN}`);
  });
  it(`allows at most ${MAX_LABELS} labels`, () => {
    const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));
    expect(labelsProblem(many(MAX_LABELS))).toBeNull();
    expect(labelsProblem(many(MAX_LABELS + 1))).toMatch(/at most/);
  });
});

describe('urlProblem', () => {
  it.each([
    'http://10.213.0.1:8086',
    'https://influx.example:8086/',
    'http://[fd00::1]:8086/api/v2?x=1#frag',
    'http://h:8086/a%20b',
    'http://127.0.0.1:18086',
  ])('accepts %s', (u) => expect(urlProblem(u)).toBeNull());

  it.each([
    ["http://h:8086/{{lookup('pipe','touch${IFS}/tmp/x')}}", /template syntax/],
    ['http://h:8086/{%x%}', /template syntax/],
    ['http://h:8086/{#x#}', /template syntax/],
    ['http://h:8086/{x}', /braces/],
    ['http://h:8086/${INFLUX_TOKEN}', /\$/],
    ['http://h:8086/$HOME', /\$/],
    ['http://h:8086/a b', /whitespace/],
    ['http://h:8086/a\tb', /whitespace/],
    ['http://h:8086/a\nb', /whitespace/],
    ['http://h:8086/"', /quotes/],
    ["http://h:8086/'", /quotes/],
    ['http://h:8086/`id`', /quotes/],
    ['http://h:8086/a\\b', /backslashes/],
    ['http://h:8086/\u0000', /control/],
    ['http://h:8086/\u007f', /control/],
    ['http://h:8086/\u2028', /control/],
    ['http://h:8086/<x>', /</],
    ['http://user:pw@h:8086', /credentials/],
    ['ftp://h', /http\(s\) URL/],
    ['javascript:alert(1)', /http\(s\) URL/],
    ['http://', /host/],
    ['', /http\(s\) URL/],
    ['http://h/' + 'a'.repeat(2048), /2048/],
  ])('refuses %j', (u, message) => expect(urlProblem(u)).toMatch(message));
});

describe('patterns', () => {
  it('host ids: what workflow ids, tags and file names take', () => {
    for (const ok of ['web-1', '10.213.1.5-22', 'db-1.eu_west', 'a']) expect(HOST_ID_PATTERN.test(ok)).toBe(true);
    for (const bad of ['Web-1', '-x', '../x', 'a b', "{{x}}", 'h'.repeat(64), '']) expect(HOST_ID_PATTERN.test(bad)).toBe(false);
  });
  it('intervals: Telegraf durations', () => {
    for (const ok of ['10s', '500ms', '1m', '2h']) expect(INTERVAL_PATTERN.test(ok)).toBe(true);
    for (const bad of ['0s', '10', '10 s', '1d', "{{x}}", '1s\n', '9999999s']) expect(INTERVAL_PATTERN.test(bad)).toBe(false);
  });
});
