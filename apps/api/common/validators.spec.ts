import 'reflect-metadata';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import * as rules from '../../../workflows/input-rules';
import * as validators from './validators';
import { IsConfigSafeUrl, IsLabelMap, NoTemplateSyntax } from './validators';

class Sample {
  @NoTemplateSyntax()
  name?: unknown;

  @IsConfigSafeUrl()
  url?: unknown;

  @IsLabelMap()
  labels?: unknown;
}

async function errorsOf(body: Record<string, unknown>): Promise<Record<string, Record<string, string>>> {
  const errors = await validate(plainToInstance(Sample, body), { skipMissingProperties: true });
  return Object.fromEntries(errors.map((e) => [e.property, e.constraints ?? {}]));
}

describe('validators', () => {
  it('re-exports the shared rules rather than defining its own', () => {
    for (const name of ['HOST_ID_PATTERN', 'FINGERPRINT_PATTERN', 'USERNAME_PATTERN', 'LABEL_KEY_PATTERN', 'LABEL_VALUE_PATTERN', 'MAX_LABELS', 'INTERVAL_PATTERN'] as const) {
      expect(validators[name]).toBe(rules[name]);
    }
  });

  it.each(["{{ lookup('pipe','id') }}", '{% if 1 %}', '{# c #}', 'x}}', 'x%}', 'x#}'])('NoTemplateSyntax rejects %j, naming the field', async (v) => {
    expect(await errorsOf({ name: v })).toEqual({ name: { noTemplateSyntax: 'name must not contain template syntax ({{ }}, {% %}, {# #})' } });
  });

  it('NoTemplateSyntax passes other strings and leaves non-strings to the type checks', async () => {
    expect(await errorsOf({ name: 'a {b} c; $(id) `x` "q"' })).toEqual({});
    expect(await errorsOf({ name: 5 })).toEqual({});
  });

  it.each([
    ["http://h:8086/{{lookup('pipe','touch${IFS}/tmp/x')}}", 'url must not contain template syntax ({{ }}, {% %}, {# #})'],
    ['http://h:8086/"x"', 'url must not contain whitespace, quotes, backslashes, braces, $, <, >, ^, | or control characters'],
    ['http://h:8086/${INFLUX_TOKEN}', 'url must not contain whitespace, quotes, backslashes, braces, $, <, >, ^, | or control characters'],
    ['http://u:p@h:8086', 'url must not contain credentials'],
  ])('IsConfigSafeUrl rejects %j', async (v, message) => {
    expect(await errorsOf({ url: v })).toEqual({ url: { isConfigSafeUrl: message } });
  });

  it('IsConfigSafeUrl accepts plain URLs', async () => {
    expect(await errorsOf({ url: 'http://10.213.0.1:8086/write?db=x' })).toEqual({});
  });

  it.each([
    [{ "{{ lookup('pipe','id') }}": 'v' }, 'labels entry #1: key must not contain template syntax ({{ }}, {% %}, {# #})'],
    [{ ok: 'v', k: '{% x %}' }, 'labels entry #2: value must not contain template syntax ({{ }}, {% %}, {# #})'],
    [{ host_id: 'v' }, 'labels entry #1: key must not be one of host_id, host, time (reserved)'],
    [{ _field: 'v' }, `labels entry #1: key must match ${rules.LABEL_KEY_PATTERN}`],
    [['a'], 'labels must be an object of string pairs'],
  ])('IsLabelMap rejects %j with the shared rule', async (v, message) => {
    expect(await errorsOf({ labels: v })).toEqual({ labels: { isLabelMap: message } });
  });

  it('IsLabelMap accepts what the activity accepts', async () => {
    const labels = { env: 'prod', 'team/owner': 'infra ops' };
    expect(await errorsOf({ labels })).toEqual({});
    expect(rules.labelsProblem(labels)).toBeNull();
  });
});
