import { WorkflowNotFoundError } from '@temporalio/client';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { OpenAPIObject } from '@nestjs/swagger';
import { getMetadataStorage } from 'class-validator';
import request from 'supertest';
import { createAnsibleActivities } from '../../activities/ansible';
import type { InstallAgentInput } from '../../activities/ansible/install-agent';
import { parseRecap } from '../../activities/ansible/recap';
import { deployDir, runPlaybook } from '../../activities/ansible/run-playbook';
import { toUnsafeYaml } from '../../activities/ansible/unsafe-yaml';
import type { ActivityDeps } from '../../activities/deps';
import { scanHostKey } from '../../activities/ssh/dialer';
import { CodecPayloadDto, CodecRequestDto } from '../../apps/api/codec/dto/codec.dto';
import { ApproveHostKeyDto } from '../../apps/api/hosts/dto/approve-host-key.dto';
import { BastionDto } from '../../apps/api/hosts/dto/bastion.dto';
import { ApprovePlanDto, CreateFleetDto, FleetSourceDto } from '../../apps/api/fleets/dto/create-fleet.dto';
import { RetryFleetDto } from '../../apps/api/fleets/dto/retry-fleet.dto';
import { CreateHostDto } from '../../apps/api/hosts/dto/create-host.dto';
import { ProvideCredentialsDto } from '../../apps/api/hosts/dto/credentials.dto';
import { UpdateHostDto } from '../../apps/api/hosts/dto/update-host.dto';
import { buildOpenApiDocument } from '../../apps/api/openapi-document';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { sealSecret, unsealSecret } from '../../lib/sealed-secret';
import type { SshTarget } from '../../workflows/contracts';
import { bearer, deadAddress, OPERATOR_TOKEN, startTestApp, type TestApp } from '../api/harness';
import { createFleet, fleetUnsupportedReason, type Fleet, type FleetHost } from '../fleet';
import { failureOf } from '../support/failures';
import { testStack } from '../support/stack';
import { generateEd25519 } from '../../activities/ssh/keys';

// Finding 1: a template in any input that reaches Ansible (influxUrl "http://h:8086/{{lookup('pipe',…)}}") ran as
// root on the controller. Three layers, each proven here on its own:
//   (a) the API refuses template syntax in every string field that can reach a host (secrets excepted: they only
//       reach ssh2 and sudo's stdin), naming the field;
//   (b) the activity refuses it again up front (InvalidInput), and the real playbook, given template payloads in
//       every value straight through runPlaybook, evaluates none of them: no marker file anywhere, the literal
//       text in telegraf.conf as a TOML string, and Telegraf itself reading the literal text;
//   (c) what a host sends back (registered output, set_stats) and what our recap callback prints is never evaluated.

const RUN = randomBytes(4).toString('hex');
const execFileAsync = promisify(execFile);

/** The payload forms, each with a marker file of its own that exists only if something evaluated it. */
function templatePayloads(tag: string) {
  const ctl = `/tmp/ao-inj-ctl-${RUN}-${tag}`;
  const host = `/tmp/ao-inj-host-${RUN}-${tag}`;
  return {
    expression: `{{ lookup('pipe','touch ${ctl}') }}`,
    statement: `{% if lookup('pipe','touch ${host}') %}{% endif %}`,
    loop: '{% for x in range(1) %}{% endfor %}',
    comment: '{# c #}',
  };
}

// ---------------------------------------------------------------------------------------------------------------
// (a) The API
// ---------------------------------------------------------------------------------------------------------------

/**
 * Every string field of every request body, and what must happen to it. A field the OpenAPI document (or a DTO's
 * validation metadata) has and this table lacks fails the test: a new field needs a decision here.
 *   checked: can reach Ansible, a template or a file on a host -> template syntax, shell and control characters are 400;
 *   secret:  password / privateKey / passphrase, sealed at once, only ever given to ssh2 and sudo's stdin -> anything goes;
 *   codec:   the Temporal UI's codec protocol: base64 values (so every form is a 400 anyway); metadata names are
 *            opaque and only travel back to the caller inside an encrypted payload, never to a host.
 */
type Kind = 'checked' | 'secret' | 'codec-name';
const LOGIN: Record<string, Kind> = { username: 'checked', password: 'secret', privateKey: 'secret', passphrase: 'secret' };
const HOST_FIELDS: Record<string, Kind> = {
  ...LOGIN,
  address: 'checked',
  hostId: 'checked',
  expectedHostKeySha256: 'checked',
  dataPath: 'checked',
  influxUrl: 'checked',
  proxyBindAddress: 'checked',
  agentMode: 'checked',
  'labels{key}': 'checked',
  'labels{value}': 'checked',
  ...Object.fromEntries(Object.entries(LOGIN).map(([k, v]) => [`bastion.${k}`, v])),
  'bastion.address': 'checked',
  'bastion.hostKeySha256': 'checked',
};
const FIELD_TABLE: Record<string, Record<string, Kind>> = {
  'POST /v1/hosts': HOST_FIELDS,
  'PATCH /v1/hosts/{id}': { 'labels{key}': 'checked', 'labels{value}': 'checked', interval: 'checked', agentMode: 'checked', agentVersion: 'checked' },
  'POST /v1/hosts/{id}/credentials': { ...LOGIN, hop: 'checked' },
  // A fleet's defaults and each of its hosts are a host request each (merged, then checked by the same rules).
  'POST /v1/fleets': {
    name: 'checked',
    ...Object.fromEntries(Object.entries(HOST_FIELDS).filter(([k]) => !['address', 'hostId', 'expectedHostKeySha256'].includes(k)).map(([k, v]) => [`defaults.${k}`, v])),
    ...Object.fromEntries(Object.entries(HOST_FIELDS).map(([k, v]) => [`hosts[].${k}`, v])),
    // A source names a path or URL the workers read (never a host's file or template): checked all the same.
    'source.kind': 'checked',
    'source.path': 'checked',
    'source.group': 'checked',
    'source.url': 'checked',
  },
  'POST /v1/fleets/{id}/plan/approve': { digest: 'checked' },
  'POST /v1/fleets/{id}/retry': {
    'hostIds[]': 'checked',
    'phases[]': 'checked',
    ...Object.fromEntries(Object.entries(LOGIN).map(([k, v]) => [`credential.${k}`, v])),
    ...Object.fromEntries(Object.entries(LOGIN).map(([k, v]) => [`bastion.${k}`, v])),
    'bastion.address': 'checked',
    'bastion.hostKeySha256': 'checked',
  },
  'POST /v1/hosts/{id}/host-key/approve': { hostKeySha256: 'checked', hop: 'checked' },
  'POST /codec/encode': { 'payloads[].data': 'checked', 'payloads[].metadata{value}': 'checked', 'payloads[].metadata{key}': 'codec-name' },
  'POST /codec/decode': { 'payloads[].data': 'checked', 'payloads[].metadata{value}': 'checked', 'payloads[].metadata{key}': 'codec-name' },
};

type Schema = { $ref?: string; allOf?: Schema[]; type?: string; properties?: Record<string, Schema>; additionalProperties?: Schema | boolean; items?: Schema };

/** String fields of a request schema as paths: `bastion.address`, `labels{key}`, `payloads[].data`. */
function stringFields(doc: OpenAPIObject, schema: Schema, prefix = ''): string[] {
  const ref = schema.$ref ?? schema.allOf?.find((s) => s.$ref)?.$ref;
  if (ref) return stringFields(doc, (doc.components!.schemas as Record<string, Schema>)[ref.split('/').pop()!], prefix);
  if (schema.type === 'string') return [prefix];
  if (schema.type === 'array' && schema.items) return stringFields(doc, schema.items, `${prefix}[]`);
  const out: string[] = [];
  for (const [name, prop] of Object.entries(schema.properties ?? {})) out.push(...stringFields(doc, prop, prefix ? `${prefix}.${name}` : name));
  if (schema.additionalProperties && typeof schema.additionalProperties === 'object') {
    out.push(`${prefix}{key}`, ...stringFields(doc, schema.additionalProperties, `${prefix}{value}`));
  }
  return out;
}

const key = generateEd25519();
const FP = 'SHA256:' + 'b'.repeat(43);
const LOGIN_BODY = { username: 'admin', password: 'pw-123456' };

/** A body that passes validation, shaped for the field under test (influxUrl needs direct, passphrase a key, …). */
function baseBody(endpoint: string, field: string): Record<string, unknown> {
  if (endpoint === 'POST /v1/fleets') {
    // The host body for the field, split: per-host fields in hosts[0], the rest in defaults (or all in the host).
    const inner = field.replace(/^(defaults\.|hosts\[\]\.)/, '');
    const { address, hostId, expectedHostKeySha256, ...shared } = baseBody('POST /v1/hosts', inner);
    const own = { address, hostId, expectedHostKeySha256 };
    if (field.startsWith('source.')) {
      const source = field === 'source.url' ? { kind: 'http', url: 'http://10.213.0.1/hosts.json' } : { kind: 'ansible-inventory', path: '/srv/inventory/hosts.ini', group: 'web' };
      return { name: 'web-eu', defaults: baseBody('POST /v1/fleets', 'defaults.username').defaults, source };
    }
    return field.startsWith('hosts[].') ? { name: 'web-eu', defaults: {}, hosts: [{ ...own, ...shared }] } : { name: 'web-eu', defaults: shared, hosts: [own] };
  }
  if (endpoint === 'POST /v1/fleets/{id}/plan/approve') return { digest: 'a'.repeat(64) };
  if (endpoint === 'POST /v1/fleets/{id}/retry') {
    const leaf = field.split('.').pop()!;
    const login = leaf === 'privateKey' || leaf === 'passphrase' ? { username: 'admin', privateKey: key.private } : { ...LOGIN_BODY };
    return { hostIds: ['web-1'], phases: ['failed'], credential: field.startsWith('credential.') ? login : LOGIN_BODY, bastion: { address: '10.213.0.10', hostKeySha256: FP, ...(field.startsWith('bastion.') ? login : LOGIN_BODY), username: 'jump' } };
  }
  if (endpoint.startsWith('POST /codec/')) return { payloads: [{ metadata: { encoding: 'YmluYXJ5L3BsYWlu' }, data: 'e30=' }] };
  if (endpoint.endsWith('/host-key/approve')) return { hostKeySha256: FP };
  if (endpoint.startsWith('PATCH /v1/hosts/')) return { labels: { env: 'prod' }, interval: '10s', agentMode: 'repo', agentVersion: '1.39.3-1' };
  const leaf = field.split('.').pop()!;
  const login = leaf === 'privateKey' || leaf === 'passphrase' ? { username: 'admin', privateKey: key.private } : { ...LOGIN_BODY };
  if (endpoint.endsWith('/credentials')) return login;
  const bastion = { address: '10.213.0.10', hostKeySha256: FP, ...(field.startsWith('bastion.') ? login : LOGIN_BODY), username: 'jump' };
  return {
    address: '10.213.1.5',
    port: 22,
    hostId: 'web-1',
    expectedHostKeySha256: FP,
    agentMode: 'artifact',
    labels: { env: 'prod' },
    ...(field.startsWith('bastion.') ? LOGIN_BODY : login),
    bastion,
    ...(field === 'proxyBindAddress' ? { dataPath: 'proxy', proxyBindAddress: '10.213.9.1' } : { dataPath: 'direct', influxUrl: 'http://10.213.0.1:8086' }),
  };
}

/** `body` with `value` at `field` (a path from stringFields); secrets get a form of the value that is still usable. */
function withValue(body: Record<string, unknown>, field: string, value: string): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(body)) as Record<string, unknown>;
  const segments = field.replace(/\[\]/g, '.0').split('.');
  let holder: Record<string, unknown> = copy;
  for (const s of segments.slice(0, -1)) holder = holder[s] as Record<string, unknown>;
  const last = segments[segments.length - 1];
  const map = /^(.*)\{(key|value)\}$/.exec(last);
  if (map) {
    holder[map[1]] = map[2] === 'key' ? { [value]: map[1] === 'labels' ? 'v' : 'YmluYXJ5L3BsYWlu' } : { [map[1] === 'labels' ? 'env' : 'encoding']: value };
  } else if (last === 'privateKey') {
    // A key carries text in its comment (inside the armour): a valid key, so only a template rule could refuse it.
    holder.privateKey = generateEd25519({ comment: value }).private;
  } else if (last === 'passphrase') {
    try {
      holder.privateKey = generateEd25519({ passphrase: value, cipher: 'aes256-ctr', rounds: 2 }).private;
    } catch {
      // a passphrase ssh2 cannot even encrypt with: the control-character rule refuses it first anyway
    }
    holder.passphrase = value;
  } else {
    holder[last] = value;
  }
  return copy;
}

/** The field name as the API reports it: `bastion.address`, `labels`, `payloads.0.data`. */
function reportedField(field: string): string {
  // A list of strings reports the list (`hostIds`); a list of objects the element's field (`payloads.0.data`).
  return field.replace(/\[\]$/, '').replace(/\[\]/g, '.0').replace(/\{(key|value)\}$/, '');
}

const apiPayloads = templatePayloads('api');
/** Endpoints that answer 202 (they start or hand over work) rather than 200. */
const ACCEPTED = new Set(['POST /v1/hosts', 'POST /v1/fleets', 'POST /v1/fleets/{id}/retry']);
// (plan/approve answers 200: it applies a plan the fleet already holds.)
const FORMS: Array<[string, string, 'template' | 'shell' | 'control']> = [
  ['{{ lookup }}', apiPayloads.expression, 'template'],
  ['{% for %}', apiPayloads.loop, 'template'],
  ['{% if lookup %}', apiPayloads.statement, 'template'],
  ['{# comment #}', apiPayloads.comment, 'template'],
  ['half a delimiter', 'x}}', 'template'],
  ['shell metacharacters', `$(touch /tmp/ao-inj-ctl-${RUN}-sh);|&\`id\`'"`, 'shell'],
  ['shell with ${IFS}', 'a${IFS}b;id', 'shell'],
  ['NUL', 'a\u0000b', 'control'],
  ['newline', 'a\nb', 'control'],
  ['escape', 'a\u001b[31mb', 'control'],
  ['bidi override', 'a\u202eb', 'control'],
];

describe('(a) the API refuses template syntax in every field that can reach a host', () => {
  let t: TestApp;
  let doc: OpenAPIObject;
  let starts: unknown[];

  beforeAll(async () => {
    t = await startTestApp(await deadAddress(), { docs: false, rateLimit: { limit: 1_000_000, windowMs: 60_000 } });
    doc = buildOpenApiDocument(t.app);
    // Temporal stand-ins: what validation lets through is accepted, and we see what would have been started.
    starts = [];
    jest.spyOn(t.client.workflow, 'start').mockImplementation((async (_type: unknown, opts: { args: unknown[] }) => {
      starts.push(opts.args[0]);
      return { firstExecutionRunId: 'run-1' };
    }) as never);
    // A source is read by a reconcile pass the API waits for, then a Schedule is made: both stand-ins too.
    jest.spyOn(t.client.workflow, 'execute').mockImplementation((async () => ({ read: { digest: 'a'.repeat(64), readAtMs: 1, ignored: [], hosts: 1 } })) as never);
    jest.spyOn(t.client.schedule, 'create').mockImplementation((async () => ({})) as never);
    // No host has run before: describe finds nothing (the API then carries no pins over).
    jest.spyOn(t.client.workflow, 'getHandle').mockImplementation(((workflowId: string) => ({
      executeUpdate: async () => ({ accepted: true, plan: { add: [], remove: [] } }),
      describe: async () => {
        throw new WorkflowNotFoundError('workflow not found', workflowId, undefined);
      },
    })) as never);
  });
  afterAll(() => t?.close());

  it('the table names every string field of every request body (OpenAPI and validation metadata)', () => {
    const found: Record<string, string[]> = {};
    for (const [p, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops as Record<string, { requestBody?: { content: Record<string, { schema: Schema }> } }>)) {
        const schema = op.requestBody?.content['application/json']?.schema;
        if (schema) found[`${method.toUpperCase()} ${p}`] = stringFields(doc, schema).sort();
      }
    }
    expect(found).toEqual(Object.fromEntries(Object.entries(FIELD_TABLE).map(([e, f]) => [e, Object.keys(f).sort()])));
    // A validated property without @ApiProperty would be missing from the document: none is.
    const storage = getMetadataStorage();
    for (const dto of [CreateHostDto, BastionDto, ProvideCredentialsDto, ApproveHostKeyDto, UpdateHostDto, CodecRequestDto, CodecPayloadDto, CreateFleetDto, RetryFleetDto, FleetSourceDto, ApprovePlanDto]) {
      const validated = new Set(storage.getTargetValidationMetadatas(dto, '', true, false).map((m) => m.propertyName));
      const documented = Object.keys((doc.components!.schemas as Record<string, Schema>)[dto.name].properties ?? {});
      expect({ dto: dto.name, missing: [...validated].filter((p) => !documented.includes(p)) }).toEqual({ dto: dto.name, missing: [] });
    }
  });

  /** The request as the endpoint is called (POST or PATCH); the host id is a valid one. */
  const send = (endpoint: string, body: object) => {
    const [method, route] = endpoint.split(' ');
    const path = route.replace('{id}', 'web-1');
    const http = request(t.app.getHttpServer());
    const req = method === 'PATCH' ? http.patch(path) : method === 'POST' ? http.post(path) : undefined;
    if (!req) throw new Error(`no request body case for ${method}: add it here`);
    return req.set(bearer(OPERATOR_TOKEN)).send(body);
  };

  it.each(Object.keys(FIELD_TABLE))('the base body of %s is accepted (so every 400 below is the field\'s)', async (endpoint) => {
    for (const field of Object.keys(FIELD_TABLE[endpoint])) {
      const res = await send(endpoint, baseBody(endpoint, field));
      expect({ field, status: res.status < 300, body: res.body }).toEqual({ field, status: true, body: expect.anything() });
    }
  });

  const cases = Object.entries(FIELD_TABLE).flatMap(([endpoint, fields]) =>
    Object.entries(fields).flatMap(([field, kind]) => FORMS.map(([formName, value, form]) => ({ endpoint, field, kind, formName, value, form }))),
  );

  it.each(cases.map((c) => [`${c.endpoint} ${c.field} (${c.kind}): ${c.formName}`, c] as const))('%s', async (_name, c) => {
    const body = withValue(baseBody(c.endpoint, c.field), c.field, c.value);
    const res = await send(c.endpoint, body);
    const field = reportedField(c.field);
    const errorsFor = (res.body.errors ?? []).filter((e: { field: string }) => e.field === field);
    const constraints = Object.assign({}, ...errorsFor.map((e: { constraints: object }) => e.constraints)) as Record<string, string>;

    if (c.kind === 'checked') {
      expect({ status: res.status, code: res.body.code }).toEqual({ status: 400, code: 'VALIDATION_FAILED' });
      expect(errorsFor.length).toBeGreaterThan(0);
      // Messages name the property (nested ones by their own name, the field path says where).
      for (const message of Object.values(constraints)) expect(message.startsWith(field.split('.').pop()!)).toBe(true);
      if (c.form === 'template' && !c.field.startsWith('payloads')) {
        // Besides any pattern, the template rule itself answers, saying why.
        expect(Object.values(constraints).join(' | ')).toContain('must not contain template syntax');
      }
      expect(res.text).not.toContain('touch /tmp'); // the value is never echoed
    } else if (c.kind === 'secret') {
      // Never the template rule on a secret: templates and shell text are accepted (and sealed, see below).
      expect(constraints).not.toHaveProperty('noTemplateSyntax');
      if (c.form !== 'control') expect({ status: res.status, body: res.body }).toEqual({ status: ACCEPTED.has(c.endpoint) ? 202 : 200, body: res.status < 300 ? expect.anything() : 'a success body' });
      else if (res.status === 400) expect(Object.keys(constraints)).toContain('noControlChars');
    } else {
      // Codec metadata names: opaque, only ever returned to the caller; never reach a host.
      expect(res.status).toBe(200);
    }
  });

  it('secrets that carried template text are sealed in the workflow input: they never reach Ansible in clear', () => {
    expect(starts.length).toBeGreaterThan(0);
    const all = JSON.stringify(starts);
    expect(all).not.toContain('lookup(');
    expect(all).not.toContain('{%');
    expect(all).toContain('"sealed"');
  });

  it('path ids are checked too', async () => {
    const res = await request(t.app.getHttpServer())
      .post(`/v1/hosts/${encodeURIComponent(apiPayloads.expression)}/credentials`)
      .set(bearer(OPERATOR_TOKEN))
      .send(LOGIN_BODY);
    expect({ status: res.status, code: res.body.code }).toEqual({ status: 400, code: 'VALIDATION_FAILED' });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// (b) The activity and the real playbook on a real fleet host
// ---------------------------------------------------------------------------------------------------------------

const unsupported = fleetUnsupportedReason();
const describeFleet = unsupported ? describe.skip : describe;
if (unsupported) console.warn(`skipping the fleet part of the template-injection tests: ${unsupported}`);

const keyring = Keyring.forTests('template-injection');
const TOKEN = `ao-inj-token-${randomBytes(8).toString('hex')}`;

function controllerMarkers(): string[] {
  return readdirSync('/tmp').filter((f) => f.startsWith('ao-inj-') && f.includes(RUN));
}

/** InfluxDB line-protocol escaping of a tag key or value (what `telegraf --test` prints). */
function lpTag(s: string): string {
  return s.replace(/[,= ]/g, (c) => `\\${c}`);
}

describeFleet('(b) template payloads through the activity and the real playbook', () => {
  let fleet: Fleet;
  let host: FleetHost;
  let target: SshTarget;
  let deps: ActivityDeps;

  async function hostExec(command: string): Promise<string> {
    const r = await fleet.exec(host, command, { timeoutMs: 60_000 });
    if (r.exitCode !== 0) throw new Error(`${command.slice(0, 60)} failed on ${host.name}: ${r.stderr}`);
    return r.stdout;
  }

  async function hostMarkers(): Promise<string[]> {
    return (await hostExec(`ls -1 /tmp | grep -F -- '-${RUN}-' || true`)).split('\n').filter(Boolean);
  }

  async function playbookHost(overrides: { user?: string; address?: string } = {}) {
    const scanned = await scanHostKey(target, { keyring });
    return {
      name: 'target',
      address: overrides.address ?? target.address,
      port: target.port,
      user: overrides.user ?? 'cloudroot',
      privateKey: unsealSecret(keyring, target.credential.privateKey!),
      hostPublicKey: scanned.hostPublicKey,
    };
  }

  function extraVars(over: Record<string, unknown>): Record<string, unknown> {
    return {
      telegraf_state: 'present',
      telegraf_host_id: 'inj-host',
      telegraf_labels: {},
      telegraf_install_mode: 'artifact',
      telegraf_artifact_path: testStack().telegrafPath,
      telegraf_output_url: host.influxUrl,
      telegraf_influx_token: TOKEN,
      telegraf_influx_org: deps.influx.org,
      telegraf_influx_bucket: deps.influx.bucket,
      telegraf_interval: '10s',
      ...over,
    };
  }

  beforeAll(async () => {
    const influx = new URL(testStack().influx.url);
    fleet = await createFleet();
    host = await fleet.addHost({ name: 'inj1', topology: 'reachable-influx', influxTarget: { host: influx.hostname, port: Number(influx.port) } });
    const keys = generateEd25519();
    const r = await fleet.exec(
      host,
      [
        'set -e',
        'useradd -m -s /bin/bash cloudroot',
        'install -d -m 700 -o cloudroot -g cloudroot /home/cloudroot/.ssh',
        'cat > /home/cloudroot/.ssh/authorized_keys',
        'chown cloudroot:cloudroot /home/cloudroot/.ssh/authorized_keys && chmod 600 /home/cloudroot/.ssh/authorized_keys',
        "echo 'cloudroot ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/cloudroot && chmod 440 /etc/sudoers.d/cloudroot",
        'grep -q "$(hostname)" /etc/hosts || echo "127.0.1.1 $(hostname)" >> /etc/hosts',
      ].join('\n'),
      { input: keys.public + '\n', timeoutMs: 60_000 },
    );
    if (r.exitCode !== 0) throw new Error(r.stderr);
    target = {
      address: host.address,
      port: host.sshPort,
      hostKeySha256: await fleet.hostKeySha256(host),
      credential: { username: 'cloudroot', privateKey: sealSecret(keyring, keys.private) },
    };
    deps = { keyring, log: createLogger('test-injection'), influx: { ...testStack().influx, token: TOKEN }, telegrafArtifact: testStack().telegrafPath };
  });

  afterAll(async () => {
    await fleet?.destroy();
    for (const f of controllerMarkers()) rmSync(path.join('/tmp', f), { force: true });
  });

  it('installAgent refuses a template in any input up front (InvalidInput, not retried, value not echoed)', async () => {
    const p = templatePayloads('activity');
    const good: InstallAgentInput = { hostId: 'inj-ok', target, agent: { mode: 'artifact', interval: '10s' }, outputUrl: host.influxUrl!, labels: { env: 'test' } };
    const variants: Array<[string, InstallAgentInput]> = [];
    for (const [form, payload] of Object.entries(p)) {
      variants.push(
        [`hostId ${form}`, { ...good, hostId: payload }],
        [`label key ${form}`, { ...good, labels: { [payload]: 'v' } }],
        [`label value ${form}`, { ...good, labels: { env: payload } }],
        [`outputUrl ${form}`, { ...good, outputUrl: `http://${host.gateway}:8086/${payload}` }],
        [`interval ${form}`, { ...good, agent: { mode: 'artifact', interval: payload } }],
        [`user ${form}`, { ...good, target: { ...target, credential: { ...target.credential, username: payload } } }],
        [`address ${form}`, { ...good, target: { ...target, address: payload } }],
      );
    }
    variants.push(
      ['the original report', { ...good, outputUrl: "http://h:8086/{{lookup('pipe','touch${IFS}/tmp/x')}}" }],
      ['outputUrl with ${INFLUX_TOKEN}', { ...good, outputUrl: 'http://h:8086/${INFLUX_TOKEN}' }],
      ['outputUrl with a quote', { ...good, outputUrl: 'http://h:8086/"' }],
      ['outputUrl with a space', { ...good, outputUrl: 'http://h:8086/a b' }],
      ['reserved label host', { ...good, labels: { host: 'x' } }],
    );
    const activities = createAnsibleActivities(deps);
    const tmpBefore = readdirSync(os.tmpdir()).filter((d) => d.startsWith('ao-ansible-')).length;
    for (const [name, input] of variants) {
      const err = await failureOf(activities.installAgent(input));
      expect({ name, type: err.type, nonRetryable: err.nonRetryable }).toEqual({ name, type: 'InvalidInput', nonRetryable: true });
      expect(err.message).not.toContain('lookup');
    }
    // Nothing ran: no run dir was made, no marker anywhere.
    expect(readdirSync(os.tmpdir()).filter((d) => d.startsWith('ao-ansible-')).length).toBeLessThanOrEqual(tmpBefore);
    expect(controllerMarkers()).toEqual([]);
    expect(await hostMarkers()).toEqual([]);
  });

  it('the real playbook, given payloads in every value, installs Telegraf with the payloads as literal TOML strings', async () => {
    const hostId = templatePayloads('hostid');
    const keyP = templatePayloads('labelkey');
    const valP = templatePayloads('labelvalue');
    const urlP = templatePayloads('url');
    const orgP = templatePayloads('org');
    const labels: Record<string, string> = {
      [keyP.expression]: valP.expression,
      [keyP.statement]: valP.statement,
      [keyP.comment]: valP.loop,
      quotes: `it's "quoted" \\ and # not a comment`,
      unicode: 'é 中文 😀',
      leak: '${INFLUX_TOKEN} $HOME',
    };
    const vars = extraVars({
      telegraf_host_id: hostId.expression,
      telegraf_labels: labels,
      telegraf_output_url: `${host.influxUrl}/${urlP.expression}`,
      telegraf_influx_org: orgP.statement,
    });
    const run = await runPlaybook({ host: await playbookHost(), extraVars: vars, secrets: [TOKEN] });
    expect({ exitCode: run.exitCode, failures: run.recap?.failures }).toEqual({ exitCode: 0, failures: [] });

    expect(controllerMarkers()).toEqual([]);
    expect(await hostMarkers()).toEqual([]);

    const conf = await hostExec('cat /etc/telegraf/telegraf.conf');
    const toml = (s: string, env = true) => `"${(env ? s.replace(/\$/g, '$$$$') : s).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
    expect(conf).toContain(`  host_id = ${toml(hostId.expression)}\n`);
    for (const [k, v] of Object.entries(labels)) expect(conf).toContain(`  ${toml(k, false)} = ${toml(v)}\n`);
    expect(conf).toContain(`  urls = [${toml(`${host.influxUrl}/${urlP.expression}`)}]\n`);
    expect(conf).toContain(`  organization = ${toml(orgP.statement)}\n`);
    expect(conf).not.toContain(TOKEN);

    // Telegraf reads exactly the literal text (and no environment variable leaks into a tag).
    const points = await hostExec(
      'set -a; . /etc/default/telegraf; set +a; /usr/local/bin/telegraf --config /etc/telegraf/telegraf.conf --test --input-filter mem 2>/dev/null',
    );
    const line = points.split('\n').find((l) => l.startsWith('> mem,'))!;
    expect(line).toBeDefined();
    expect(line).toContain(`host_id=${lpTag(hostId.expression)}`);
    for (const [k, v] of Object.entries(labels)) expect(line).toContain(`${lpTag(k)}=${lpTag(v)}`);
    expect(line).not.toContain(TOKEN);
  });

  it('a template in the interval reaches Telegraf as text, which refuses it: the run fails, nothing is evaluated', async () => {
    const p = templatePayloads('interval');
    const run = await runPlaybook({ host: await playbookHost(), extraVars: extraVars({ telegraf_interval: p.expression, telegraf_host_id: 'inj-interval' }), secrets: [TOKEN] });
    expect(run.exitCode).not.toBe(0);
    expect(run.recap?.failures[0]?.task).toMatch(/Write telegraf\.conf$/);
    expect(controllerMarkers()).toEqual([]);
    expect(await hostMarkers()).toEqual([]);
  });

  it('templates in the inventory (user, address) are connection data, never evaluated', async () => {
    const userP = templatePayloads('user');
    const addrP = templatePayloads('address');
    for (const overrides of [{ user: userP.expression }, { user: userP.statement }, { address: addrP.expression }]) {
      const run = await runPlaybook({ host: await playbookHost(overrides), extraVars: extraVars({}), secrets: [TOKEN] });
      expect({ overrides, exitCode: run.exitCode === 0 }).toEqual({ overrides, exitCode: false });
      expect(run.recap?.failures[0]?.kind).toBe('unreachable');
    }
    expect(controllerMarkers()).toEqual([]);
    expect(await hostMarkers()).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// (c) What comes back from a host, and what the recap callback prints
// ---------------------------------------------------------------------------------------------------------------

describe('(c) host output and the recap callback stay inert', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ao-inj-local-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('registered output with template text goes through set_fact and set_stats as text, and the recap prints it as data', async () => {
    const p = templatePayloads('hostoutput');
    const varsFile = path.join(dir, 'vars.yml');
    // What a hostile host prints (its "telegraf --version", a fact): the payload, produced on the "host".
    writeFileSync(varsFile, toUnsafeYaml({ host_says: `Telegraf ${p.expression} ${p.statement}` }), { mode: 0o600 });
    const playbook = path.join(dir, 'play.yml');
    writeFileSync(
      playbook,
      JSON.stringify([
        {
          hosts: 'all',
          gather_facts: false,
          tasks: [
            { name: 'Host output', 'ansible.builtin.command': { argv: ['printf', '%s\\n', '{{ host_says }}'] }, register: 'out', changed_when: false },
            { name: 'Derive a fact', 'ansible.builtin.set_fact': { derived: "{{ out.stdout_lines[0] | regex_replace('^Telegraf ', '') }}" } },
            { name: 'Use the fact', 'ansible.builtin.debug': { msg: '{{ derived }}' } },
            { name: 'Publish', 'ansible.builtin.set_stats': { per_host: true, aggregate: false, data: { telegraf_version: '{{ derived }}' } } },
            { name: 'Fail with it', 'ansible.builtin.fail': { msg: 'host said {{ derived }}' } },
          ],
        },
      ]),
    );
    const res = await execFileAsync('ansible-playbook', ['-i', 'localhost,', '-c', 'local', '-e', `@${varsFile}`, playbook], {
      cwd: deployDir(),
      env: {
        PATH: process.env.PATH,
        HOME: dir,
        LANG: 'C.UTF-8',
        ANSIBLE_CONFIG: path.join(deployDir(), 'ansible.cfg'),
        ANSIBLE_STDOUT_CALLBACK: 'ao_recap',
        ANSIBLE_LOCAL_TEMP: path.join(dir, 'tmp'),
        ANSIBLE_HOME: path.join(dir, 'home'),
      },
    }).catch((e: { stdout: string }) => ({ stdout: e.stdout }));
    const recap = parseRecap(res.stdout);
    const literal = `${p.expression} ${p.statement}`;
    expect(recap?.custom.localhost?.telegraf_version).toBe(literal);
    expect(recap?.failures).toEqual([expect.objectContaining({ task: 'Fail with it', message: `host said ${literal}` })]);
    expect(controllerMarkers()).toEqual([]);
    expect(existsSync(`/tmp/ao-inj-host-${RUN}-hostoutput`)).toBe(false);
  });
});
