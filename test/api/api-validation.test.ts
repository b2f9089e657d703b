import request from 'supertest';
import { bearer, deadAddress, OPERATOR_TOKEN, startTestApp, VIEWER_TOKEN, type TestApp } from './harness';
import { generateEd25519 } from '../../activities/ssh/keys';

// Validation must answer before Temporal is touched: the client points at a port where nothing listens,
// so any request that got through would come back 503, not 4xx.

const key = generateEd25519();
const encryptedKey = generateEd25519({ passphrase: 'right horse', cipher: 'aes256-ctr', rounds: 16 });
const PASSWORD = 'Corr3ct-Horse-Battery';
const base = { address: '10.213.1.5', username: 'admin', password: PASSWORD };
const without = (o: Record<string, unknown>, k: string) => Object.fromEntries(Object.entries(o).filter(([x]) => x !== k));
const bastion = { address: '10.213.0.10', username: 'jump', password: PASSWORD };

interface Row {
  name: string;
  body: unknown;
  /** Raw request body (invalid JSON etc.); `body` is then ignored. */
  raw?: string;
  contentType?: string;
  status: number;
  code: string;
  fields?: string[];
  /** Strings that must not appear in the response (secrets, injected text). */
  notEchoed?: string[];
}

const rows: Row[] = [
  { name: 'empty object', body: {}, status: 400, code: 'VALIDATION_FAILED', fields: ['address', 'username', 'password'] },
  { name: 'missing address', body: without(base, 'address'), status: 400, code: 'VALIDATION_FAILED', fields: ['address'] },
  { name: 'address is a number', body: { ...base, address: 1234 }, status: 400, code: 'VALIDATION_FAILED', fields: ['address'] },
  { name: 'address is an object', body: { ...base, address: { $gt: '' } }, status: 400, code: 'VALIDATION_FAILED', fields: ['address'] },
  { name: 'address not a host', body: { ...base, address: 'not an address!' }, status: 400, code: 'VALIDATION_FAILED', fields: ['address'] },
  { name: 'address with newline', body: { ...base, address: '10.213.1.5\nHost evil' }, status: 400, code: 'VALIDATION_FAILED', fields: ['address'] },
  { name: 'address shell injection', body: { ...base, address: '10.213.1.5; rm -rf /' }, status: 400, code: 'VALIDATION_FAILED', fields: ['address'] },
  { name: 'address command substitution', body: { ...base, address: '$(reboot)' }, status: 400, code: 'VALIDATION_FAILED', fields: ['address'] },
  { name: 'address SQL-ish', body: { ...base, address: "' OR 1=1 --" }, status: 400, code: 'VALIDATION_FAILED', fields: ['address'] },
  { name: 'address huge', body: { ...base, address: 'a'.repeat(5000) }, status: 400, code: 'VALIDATION_FAILED', fields: ['address'] },
  { name: 'address with IPv6 zone', body: { ...base, address: 'fe80::1%eth0' }, status: 400, code: 'VALIDATION_FAILED', fields: ['address'] },
  { name: 'port as string', body: { ...base, port: '22' }, status: 400, code: 'VALIDATION_FAILED', fields: ['port'] },
  { name: 'port 0', body: { ...base, port: 0 }, status: 400, code: 'VALIDATION_FAILED', fields: ['port'] },
  { name: 'port 70000', body: { ...base, port: 70000 }, status: 400, code: 'VALIDATION_FAILED', fields: ['port'] },
  { name: 'port fractional', body: { ...base, port: 22.5 }, status: 400, code: 'VALIDATION_FAILED', fields: ['port'] },
  { name: 'missing username', body: without(base, 'username'), status: 400, code: 'VALIDATION_FAILED', fields: ['username'] },
  { name: 'username injection', body: { ...base, username: 'root; id' }, status: 400, code: 'VALIDATION_FAILED', fields: ['username'] },
  { name: 'username ssh option', body: { ...base, username: '-oProxyCommand=sh' }, status: 400, code: 'VALIDATION_FAILED', fields: ['username'] },
  { name: 'username too long', body: { ...base, username: 'u'.repeat(100) }, status: 400, code: 'VALIDATION_FAILED', fields: ['username'] },
  { name: 'neither password nor key', body: without(base, 'password'), status: 400, code: 'VALIDATION_FAILED', fields: ['password'] },
  {
    name: 'both password and key',
    body: { ...base, privateKey: key.private },
    status: 400,
    code: 'VALIDATION_FAILED',
    fields: ['password'],
    notEchoed: [PASSWORD, 'OPENSSH PRIVATE KEY'],
  },
  { name: 'password is a number', body: { ...base, password: 12345678 }, status: 400, code: 'VALIDATION_FAILED', fields: ['password'] },
  { name: 'password null', body: { ...base, password: null }, status: 400, code: 'VALIDATION_FAILED', fields: ['password'] },
  { name: 'password with NUL', body: { ...base, password: 'abc\u0000def' }, status: 400, code: 'VALIDATION_FAILED', fields: ['password'] },
  { name: 'password with bidi override', body: { ...base, password: 'abc\u202edef' }, status: 400, code: 'VALIDATION_FAILED', fields: ['password'] },
  { name: 'password huge', body: { ...base, password: 'p'.repeat(5000) }, status: 400, code: 'VALIDATION_FAILED', fields: ['password'] },
  { name: 'password empty', body: { ...base, password: '' }, status: 400, code: 'VALIDATION_FAILED', fields: ['password'] },
  {
    name: 'private key garbage',
    body: { ...without(base, 'password'), privateKey: 'SECRET-NOT-A-KEY-material' },
    status: 400,
    code: 'VALIDATION_FAILED',
    fields: ['privateKey'],
    notEchoed: ['SECRET-NOT-A-KEY-material'],
  },
  {
    name: 'private key is a public key',
    body: { ...without(base, 'password'), privateKey: key.public },
    status: 400,
    code: 'VALIDATION_FAILED',
    fields: ['privateKey'],
  },
  {
    name: 'encrypted key without passphrase',
    body: { ...without(base, 'password'), privateKey: encryptedKey.private },
    status: 400,
    code: 'VALIDATION_FAILED',
    fields: ['privateKey'],
    notEchoed: ['OPENSSH PRIVATE KEY'],
  },
  {
    name: 'encrypted key, wrong passphrase',
    body: { ...without(base, 'password'), privateKey: encryptedKey.private, passphrase: 'wrong horse' },
    status: 400,
    code: 'VALIDATION_FAILED',
    fields: ['privateKey'],
    notEchoed: ['wrong horse', 'OPENSSH PRIVATE KEY'],
  },
  { name: 'passphrase without key', body: { ...base, passphrase: 'x' }, status: 400, code: 'VALIDATION_FAILED', fields: ['passphrase'] },
  { name: 'unknown field', body: { ...base, isAdmin: true }, status: 400, code: 'VALIDATION_FAILED', fields: ['isAdmin'] },
  {
    name: 'unknown field with a control-character name',
    body: { ...base, ['x\u0007'.repeat(3)]: 1 },
    status: 400,
    code: 'VALIDATION_FAILED',
  },
  { name: 'unknown timing field', body: { ...base, timing: { verifyDeadlineMs: 1 } }, status: 400, code: 'VALIDATION_FAILED', fields: ['timing'] },
  {
    name: '__proto__ in body',
    body: undefined,
    raw: JSON.stringify(base).replace(/^\{/, '{"__proto__":{"isAdmin":true},'),
    status: 400,
    code: 'VALIDATION_FAILED',
    fields: ['__proto__'],
  },
  { name: 'hostId uppercase', body: { ...base, hostId: 'Web-1' }, status: 400, code: 'VALIDATION_FAILED', fields: ['hostId'] },
  { name: 'hostId path traversal', body: { ...base, hostId: '../../etc/passwd' }, status: 400, code: 'VALIDATION_FAILED', fields: ['hostId'] },
  { name: 'hostId too long', body: { ...base, hostId: 'h'.repeat(64) }, status: 400, code: 'VALIDATION_FAILED', fields: ['hostId'] },
  { name: 'fingerprint not SHA256', body: { ...base, expectedHostKeySha256: 'MD5:ab:cd' }, status: 400, code: 'VALIDATION_FAILED', fields: ['expectedHostKeySha256'] },
  { name: 'unknown dataPath', body: { ...base, dataPath: 'carrier-pigeon' }, status: 400, code: 'VALIDATION_FAILED', fields: ['dataPath'] },
  { name: 'proxy without bastion', body: { ...base, dataPath: 'proxy' }, status: 400, code: 'VALIDATION_FAILED', fields: ['dataPath'] },
  { name: 'influxUrl with tunnel', body: { ...base, influxUrl: 'http://10.213.0.1:8086' }, status: 400, code: 'VALIDATION_FAILED', fields: ['influxUrl'] },
  {
    name: 'influxUrl javascript:',
    body: { ...base, dataPath: 'direct', influxUrl: 'javascript:alert(1)' },
    status: 400,
    code: 'VALIDATION_FAILED',
    fields: ['influxUrl'],
  },
  {
    name: 'influxUrl with credentials',
    body: { ...base, dataPath: 'direct', influxUrl: 'http://user:pw@10.213.0.1:8086' },
    status: 400,
    code: 'VALIDATION_FAILED',
    fields: ['influxUrl'],
  },
  {
    name: 'proxyBindAddress not an IP',
    body: { ...base, bastion, dataPath: 'proxy', proxyBindAddress: 'everywhere' },
    status: 400,
    code: 'VALIDATION_FAILED',
    fields: ['proxyBindAddress'],
  },
  { name: 'agentMode injection', body: { ...base, agentMode: 'curl|sh' }, status: 400, code: 'VALIDATION_FAILED', fields: ['agentMode'] },
  { name: 'labels is an array', body: { ...base, labels: ['a'] }, status: 400, code: 'VALIDATION_FAILED', fields: ['labels'] },
  {
    name: 'too many labels',
    body: { ...base, labels: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) },
    status: 400,
    code: 'VALIDATION_FAILED',
    fields: ['labels'],
  },
  { name: 'label value with quote', body: { ...base, labels: { env: 'a"b' } }, status: 400, code: 'VALIDATION_FAILED', fields: ['labels'] },
  { name: 'label key with newline', body: { ...base, labels: { 'a\nb': 'x' } }, status: 400, code: 'VALIDATION_FAILED', fields: ['labels'] },
  { name: 'label value a number', body: { ...base, labels: { env: 1 } }, status: 400, code: 'VALIDATION_FAILED', fields: ['labels'] },
  {
    name: 'label key __proto__',
    body: undefined,
    raw: JSON.stringify({ ...base, labels: {} }).replace('"labels":{}', '"labels":{"__proto__":{"x":"y"}}'),
    status: 400,
    code: 'VALIDATION_FAILED',
    fields: ['labels.__proto__'],
  },
  { name: 'bastion is a string', body: { ...base, bastion: 'jump@10.213.0.10' }, status: 400, code: 'VALIDATION_FAILED', fields: ['bastion'] },
  { name: 'bastion is an array', body: { ...base, bastion: [bastion] }, status: 400, code: 'VALIDATION_FAILED', fields: ['bastion'] },
  { name: 'bastion without username', body: { ...base, bastion: without(bastion, 'username') }, status: 400, code: 'VALIDATION_FAILED', fields: ['bastion.username'] },
  { name: 'bastion unknown field', body: { ...base, bastion: { ...bastion, shell: '/bin/sh' } }, status: 400, code: 'VALIDATION_FAILED', fields: ['bastion.shell'] },
  {
    name: 'bastion with password and key',
    body: { ...base, bastion: { ...bastion, privateKey: key.private } },
    status: 400,
    code: 'VALIDATION_FAILED',
    fields: ['bastion.password'],
  },
  { name: 'bastion bad fingerprint', body: { ...base, bastion: { ...bastion, hostKeySha256: 'SHA256:short' } }, status: 400, code: 'VALIDATION_FAILED', fields: ['bastion.hostKeySha256'] },
  { name: 'body is an array', body: [base], status: 400, code: 'VALIDATION_FAILED' },
  { name: 'invalid JSON', body: undefined, raw: '{"address": "10.213.1.5", ', status: 400, code: 'MALFORMED_JSON' },
  {
    name: 'invalid JSON holding a secret',
    body: undefined,
    raw: `{"password": "${PASSWORD}" oops}`,
    status: 400,
    code: 'MALFORMED_JSON',
    notEchoed: [PASSWORD],
  },
  { name: 'JSON null', body: undefined, raw: 'null', status: 400, code: 'MALFORMED_JSON' },
  { name: 'JSON string', body: undefined, raw: '"hello"', status: 400, code: 'MALFORMED_JSON' },
  { name: 'not JSON content type', body: undefined, raw: 'address=10.213.1.5', contentType: 'application/x-www-form-urlencoded', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'body too large', body: { ...base, password: 'p'.repeat(200_000) }, status: 413, code: 'PAYLOAD_TOO_LARGE' },
];

const CTL = 'ctl-\u0007';
/** PATCH /v1/hosts/:id: every field with bad values; `fields` must be named. */
const changeRows: Array<{ name: string; body?: unknown; raw?: string; fields: string[] }> = [
  { name: 'empty body', body: {}, fields: ['(body)'] },
  { name: 'unknown field', body: { interval: '10s', hostId: 'other' }, fields: ['hostId'] },
  { name: 'unknown field only', body: { address: '10.213.1.6' }, fields: ['address'] },
  { name: 'body is an array', body: [{ interval: '10s' }], fields: [] },
  // labels: replace-all map, the onboarding's rules
  { name: 'labels null', body: { labels: null }, fields: ['labels'] },
  { name: 'labels an array', body: { labels: ['env=prod'] }, fields: ['labels'] },
  { name: 'labels a string', body: { labels: 'env=prod' }, fields: ['labels'] },
  { name: 'label value a number', body: { labels: { env: 1 } }, fields: ['labels'] },
  { name: 'label value {{ }}', body: { labels: { env: '{{ lookup("pipe","id") }}' } }, fields: ['labels'] },
  { name: 'label key {% %}', body: { labels: { '{% if 1 %}': 'x' } }, fields: ['labels'] },
  { name: 'label value shell', body: { labels: { env: '$(id);`id`|sh' } }, fields: ['labels'] },
  { name: 'label value control char', body: { labels: { env: CTL } }, fields: ['labels'] },
  { name: 'label value newline', body: { labels: { env: 'a\nb' } }, fields: ['labels'] },
  { name: 'label value too long', body: { labels: { env: 'v'.repeat(256) } }, fields: ['labels'] },
  { name: 'label key too long', body: { labels: { ['k'.repeat(64)]: 'v' } }, fields: ['labels'] },
  { name: 'label key reserved', body: { labels: { host_id: 'x' } }, fields: ['labels'] },
  { name: 'too many labels', body: { labels: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) }, fields: ['labels'] },
  {
    name: 'label key __proto__',
    raw: '{"labels":{"__proto__":{"x":"y"}}}',
    fields: ['labels.__proto__'],
  },
  // interval: a Telegraf duration
  { name: 'interval null', body: { interval: null }, fields: ['interval'] },
  { name: 'interval a number', body: { interval: 30 }, fields: ['interval'] },
  { name: 'interval without unit', body: { interval: '30' }, fields: ['interval'] },
  { name: 'interval zero', body: { interval: '0s' }, fields: ['interval'] },
  { name: 'interval {{ }}', body: { interval: '{{ 10 }}s' }, fields: ['interval'] },
  { name: 'interval {% %}', body: { interval: '{% raw %}10s' }, fields: ['interval'] },
  { name: 'interval shell', body: { interval: '10s; id' }, fields: ['interval'] },
  { name: 'interval control char', body: { interval: '10s\u0000' }, fields: ['interval'] },
  { name: 'interval too long', body: { interval: `${'1'.repeat(40)}s` }, fields: ['interval'] },
  // agentMode
  { name: 'agentMode unknown', body: { agentMode: 'curl|sh' }, fields: ['agentMode'] },
  { name: 'agentMode null', body: { agentMode: null }, fields: ['agentMode'] },
  { name: 'agentMode a number', body: { agentMode: 1 }, fields: ['agentMode'] },
  { name: 'agentMode {{ }}', body: { agentMode: '{{ mode }}' }, fields: ['agentMode'] },
  // agentVersion: repo mode only, a package version
  { name: 'agentVersion with agentMode artifact', body: { agentMode: 'artifact', agentVersion: '1.39.3-1' }, fields: ['agentVersion'] },
  { name: 'agentVersion null', body: { agentVersion: null }, fields: ['agentVersion'] },
  { name: 'agentVersion a number', body: { agentMode: 'repo', agentVersion: 1.39 }, fields: ['agentVersion'] },
  { name: 'agentVersion a glob', body: { agentMode: 'repo', agentVersion: '1.*' }, fields: ['agentVersion'] },
  { name: 'agentVersion {{ }}', body: { agentMode: 'repo', agentVersion: '1.{{ x }}' }, fields: ['agentVersion'] },
  { name: 'agentVersion {% %}', body: { agentMode: 'repo', agentVersion: '1{% if 1 %}{% endif %}' }, fields: ['agentVersion'] },
  { name: 'agentVersion shell', body: { agentMode: 'repo', agentVersion: '1.0; apt-get remove -y sshd' }, fields: ['agentVersion'] },
  { name: 'agentVersion space', body: { agentMode: 'repo', agentVersion: '1.0 2.0' }, fields: ['agentVersion'] },
  { name: 'agentVersion control char', body: { agentMode: 'repo', agentVersion: '1.0\u001b[31m' }, fields: ['agentVersion'] },
  { name: 'agentVersion too long', body: { agentMode: 'repo', agentVersion: '1'.repeat(65) }, fields: ['agentVersion'] },
  { name: 'several fields at once', body: { interval: 'soon', agentMode: 'apt', labels: { env: '"' } }, fields: ['interval', 'agentMode', 'labels'] },
];

describe('POST /v1/hosts rejects malformed bodies before touching Temporal', () => {
  let t: TestApp;
  let startSpy: jest.SpyInstance;

  beforeAll(async () => {
    t = await startTestApp(await deadAddress(), { timeouts: { rpcMs: 1_000, queryMs: 500, updateMs: 1_000 } });
    startSpy = jest.spyOn(t.client.workflow, 'start');
  });
  afterAll(() => t?.close());

  it.each(rows.map((r) => [r.name, r] as const))('%s', async (_name, row) => {
    let req = request(t.app.getHttpServer()).post('/v1/hosts').set(bearer(OPERATOR_TOKEN));
    if (row.raw !== undefined) req = req.set('Content-Type', row.contentType ?? 'application/json').send(row.raw);
    else req = req.send(row.body as object);
    const res = await req;
    expect(res.status).toBe(row.status);
    expect(res.headers['content-type']).toMatch(/application\/json/);
    expect(res.body).toMatchObject({ statusCode: row.status, code: row.code });
    expect(typeof res.body.message).toBe('string');
    if (row.code === 'VALIDATION_FAILED') {
      expect(Array.isArray(res.body.errors)).toBe(true);
      expect(res.body.errors.length).toBeGreaterThan(0);
      for (const e of res.body.errors) {
        expect(typeof e.field).toBe('string');
        expect(Object.keys(e.constraints).length).toBeGreaterThan(0);
      }
    }
    for (const field of row.fields ?? []) expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
    for (const secret of row.notEchoed ?? []) expect(res.text).not.toContain(secret);
    // eslint-disable-next-line no-control-regex -- looking for echoed control characters
    expect(res.text).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/); // no raw control characters echoed
  });

  it('other endpoints reject bad ids, bodies and query strings with 400', async () => {
    const http = () => request(t.app.getHttpServer());
    const cases: Array<[string, request.Test, string]> = [
      ['bad host id', http().get('/v1/hosts/UPPER..case').set(bearer(OPERATOR_TOKEN)), 'id'],
      ['bad tunnel id', http().get('/v1/tunnels/-x').set(bearer(OPERATOR_TOKEN)), 'id'],
      ['bad phase', http().get('/v1/hosts?phase=bogus').set(bearer(OPERATOR_TOKEN)), 'phase'],
      ['pageSize 0', http().get('/v1/hosts?pageSize=0').set(bearer(OPERATOR_TOKEN)), 'pageSize'],
      ['pageSize text', http().get('/v1/hosts?pageSize=lots').set(bearer(OPERATOR_TOKEN)), 'pageSize'],
      ['pageToken odd', http().get('/v1/hosts?pageToken=%3Cscript%3E').set(bearer(OPERATOR_TOKEN)), 'pageToken'],
      ['unknown query param', http().get('/v1/tunnels?state=up').set(bearer(OPERATOR_TOKEN)), 'state'],
      ['credentials empty', http().post('/v1/hosts/web-1/credentials').set(bearer(OPERATOR_TOKEN)).send({}), 'username'],
      ['credentials both', http().post('/v1/hosts/web-1/credentials').set(bearer(OPERATOR_TOKEN)).send({ username: 'a', password: 'x', privateKey: key.private }), 'password'],
      ['approve bad fingerprint', http().post('/v1/hosts/web-1/host-key/approve').set(bearer(OPERATOR_TOKEN)).send({ hostKeySha256: 'yes' }), 'hostKeySha256'],
      ['codec payloads not an array', http().post('/codec/decode').set(bearer(OPERATOR_TOKEN)).send({ payloads: 'x' }), 'payloads'],
      ['codec data not base64', http().post('/codec/decode').set(bearer(OPERATOR_TOKEN)).send({ payloads: [{ data: '%%%' }] }), 'payloads.0.data'],
    ];
    for (const [name, req, field] of cases) {
      const res = await req;
      expect({ name, status: res.status, code: res.body.code }).toEqual({ name, status: 400, code: 'VALIDATION_FAILED' });
      expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
    }
    const badEncoding = await http().get('/v1/hosts/%FF').set(bearer(OPERATOR_TOKEN));
    expect(badEncoding.status).toBe(400);
    expect(badEncoding.body.code).toBe('BAD_REQUEST');
  });

  it('never called Temporal, and the server is still up', async () => {
    expect(startSpy).not.toHaveBeenCalled();
    const res = await request(t.app.getHttpServer()).get('/healthz');
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('ok');
  });

  it('a valid body with Temporal down is 503 TEMPORAL_UNAVAILABLE, not 500', async () => {
    const res = await request(t.app.getHttpServer()).post('/v1/hosts').set(bearer(OPERATOR_TOKEN)).send(base);
    expect(res.status).toBe(503);
    expect(res.body.code).toBe('TEMPORAL_UNAVAILABLE');
    expect(res.text).not.toContain(PASSWORD);
    const ready = await request(t.app.getHttpServer()).get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.code).toBe('TEMPORAL_UNAVAILABLE');
  });

  it('unknown routes are JSON 404s with a code', async () => {
    const res = await request(t.app.getHttpServer()).get('/v1/nothing-here').set(bearer(OPERATOR_TOKEN));
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('NOT_FOUND');
  });
});

describe('PATCH /v1/hosts/:id and POST /v1/hosts/:id/rotate-key validate before touching Temporal', () => {
  let t: TestApp;
  let updateCalls: number;
  const http = () => request(t.app.getHttpServer());

  beforeAll(async () => {
    t = await startTestApp(await deadAddress(), { timeouts: { rpcMs: 1_000, queryMs: 500, updateMs: 1_000 } });
    updateCalls = 0;
    const getHandle = t.client.workflow.getHandle.bind(t.client.workflow);
    jest.spyOn(t.client.workflow, 'getHandle').mockImplementation(((...args: Parameters<typeof getHandle>) => {
      const handle = getHandle(...args);
      const executeUpdate = handle.executeUpdate.bind(handle);
      return Object.assign(handle, {
        executeUpdate: (...a: Parameters<typeof executeUpdate>) => {
          updateCalls++;
          return executeUpdate(...a);
        },
      });
    }) as never);
  });
  afterAll(() => t?.close());

  it.each(changeRows.map((r) => [r.name, r] as const))('PATCH %s → 400 naming the field', async (_name, row) => {
    const req = http().patch('/v1/hosts/web-1').set(bearer(OPERATOR_TOKEN));
    const res = row.raw !== undefined ? await req.set('Content-Type', 'application/json').send(row.raw) : await req.send(row.body as object);
    expect({ status: res.status, code: res.body.code }).toEqual({ status: 400, code: 'VALIDATION_FAILED' });
    const fields = res.body.errors.map((e: { field: string }) => e.field);
    for (const field of row.fields) expect(fields).toContain(field);
    for (const e of res.body.errors) expect(Object.keys(e.constraints).length).toBeGreaterThan(0);
    // Never the value: no template, shell or control text comes back.
    expect(res.text).not.toMatch(/lookup|if 1|`id`|\{\{ (10|mode|x)|raw %|10s; id|apt-get/);
    // eslint-disable-next-line no-control-regex -- looking for echoed control characters
    expect(res.text).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/);
  });

  it('names why: template syntax, the at-least-one rule, agentVersion only with repo', async () => {
    const constraints = async (body: object) => {
      const res = await http().patch('/v1/hosts/web-1').set(bearer(OPERATOR_TOKEN)).send(body);
      return Object.assign({}, ...res.body.errors.map((e: { constraints: object }) => e.constraints)) as Record<string, string>;
    };
    expect(await constraints({ interval: '{{ x }}' })).toMatchObject({ noTemplateSyntax: expect.stringMatching(/^interval must not contain template syntax/) });
    expect(await constraints({})).toEqual({ atLeastOneField: 'the body must set at least one of labels, interval, agentMode, agentVersion' });
    expect(await constraints({ agentMode: 'artifact', agentVersion: '1.39.3-1' })).toEqual({ onlyWhen: 'agentVersion is only valid with agentMode "repo"' });
  });

  it('valid bodies reach Temporal (nothing listens here: 503/504), path ids are checked, viewers are refused', async () => {
    const before = updateCalls;
    for (const body of [
      { labels: {} },
      { labels: { env: 'prod', 'team/db': 'a b:c@d' } },
      { interval: '500ms' },
      { agentMode: 'repo' },
      { agentMode: 'repo', agentVersion: '1.39.3-1' },
      { agentVersion: '' }, // unpin; whether the host is in repo mode is the host's to say
      { agentVersion: '1.39.3-1~deb12u1' },
    ]) {
      const res = await http().patch('/v1/hosts/web-1').set(bearer(OPERATOR_TOKEN)).send(body);
      expect({ body, status: res.status, code: res.body.code }).toEqual({ body, status: expect.any(Number), code: expect.stringMatching(/^TEMPORAL_(UNAVAILABLE|TIMEOUT)$/) });
    }
    const rotate = await http().post('/v1/hosts/web-1/rotate-key').set(bearer(OPERATOR_TOKEN));
    expect(rotate.body.code).toMatch(/^TEMPORAL_(UNAVAILABLE|TIMEOUT)$/);
    expect(updateCalls - before).toBe(8);

    const calls = updateCalls;
    const badId = await http().patch('/v1/hosts/UPPER..case').set(bearer(OPERATOR_TOKEN)).send({ interval: '10s' });
    expect(badId.status).toBe(400);
    expect(badId.body.errors.map((e: { field: string }) => e.field)).toContain('id');
    const badRotateId = await http().post(`/v1/hosts/${encodeURIComponent('{{x}}')}/rotate-key`).set(bearer(OPERATOR_TOKEN));
    expect(badRotateId.status).toBe(400);
    for (const req of [http().patch('/v1/hosts/web-1').send({ interval: '10s' }), http().post('/v1/hosts/web-1/rotate-key')]) {
      const res = await req.set(bearer(VIEWER_TOKEN));
      expect({ status: res.status, code: res.body.code }).toEqual({ status: 403, code: 'FORBIDDEN' });
    }
    expect(updateCalls).toBe(calls);
  });
});
