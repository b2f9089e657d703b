import { randomBytes } from 'node:crypto';
import { apiKeyEnv, ConfigError, FRESHNESS_DEFAULTS, freshnessConfig, inventoryConfig, loadApiConfig, loadWorkerConfig, parseTrustProxy } from './config';
import { Keyring } from './keyring';
import { sealSecret, unsealSecret } from './sealed-secret';

const master = `k2:${randomBytes(32).toString('base64')},k1:${randomBytes(32).toString('base64')}`;
const keyring = Keyring.parse(master);
const apiEnv = apiKeyEnv(keyring);

describe('who gets which keys (lib/config)', () => {
  it('worker: AO_MASTER_KEYS is required and gives the full keyring', () => {
    expect(() => loadWorkerConfig({})).toThrow(/AO_MASTER_KEYS is required/);
    expect(() => loadWorkerConfig({ AO_MASTER_KEYS: 'k1:short' })).toThrow(ConfigError);
    const worker = loadWorkerConfig({ AO_MASTER_KEYS: master });
    expect(worker.keyring.ids).toEqual(['k2', 'k1']);
  });

  it('API: refuses AO_MASTER_KEYS and says how to derive its keys instead', () => {
    for (const env of [{ AO_MASTER_KEYS: master }, { AO_MASTER_KEYS: master, ...apiEnv }]) {
      let error: Error | undefined;
      try {
        loadApiConfig(env);
      } catch (e) {
        error = e as Error;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect(error!.message).toMatch(/AO_MASTER_KEYS must not be given to the API/);
      expect(error!.message).toContain('npx agent-onboarding keys api-env');
      expect(error!.message).not.toContain(master.split(',')[0].split(':')[1]);
    }
  });

  it('API: needs AO_CODEC_KEYS and AO_SEAL_PUBLIC_KEYS, with messages that name them', () => {
    expect(() => loadApiConfig({})).toThrow(/AO_CODEC_KEYS is required .*keys api-env/);
    expect(() => loadApiConfig({ AO_CODEC_KEYS: apiEnv.AO_CODEC_KEYS })).toThrow(/AO_SEAL_PUBLIC_KEYS is required/);
    expect(() => loadApiConfig({ ...apiEnv, AO_CODEC_KEYS: 'k2:c2hvcnQ=' })).toThrow(/AO_CODEC_KEYS: key "k2" must be .*32 bytes/);
    expect(() => loadApiConfig({ ...apiEnv, AO_SEAL_PUBLIC_KEYS: 'k2' })).toThrow(/AO_SEAL_PUBLIC_KEYS entries must look like/);
    const stale = apiKeyEnv(Keyring.parse(master.split(',')[1]));
    expect(() => loadApiConfig({ ...apiEnv, AO_SEAL_PUBLIC_KEYS: stale.AO_SEAL_PUBLIC_KEYS })).toThrow(/must start with the same key id \(got "k2" and "k1"\)/);
  });

  it('API: its keys seal for the workers and hold nothing that opens', () => {
    const api = loadApiConfig(apiEnv);
    expect(Object.keys(api)).not.toContain('keyring');
    const sealed = sealSecret(api.keys.sealer, 'pw');
    expect(unsealSecret(keyring, sealed)).toBe('pw');
    // Its codec keys taken for master keys open nothing (they are other keys).
    expect(() => unsealSecret(Keyring.parse(apiEnv.AO_CODEC_KEYS), sealed)).toThrow(/could not be opened/);
  });

  it('dev codec capability: off by default, a long secret, loopback only; the Origin bypass is gone', () => {
    expect(loadApiConfig(apiEnv).api.devCodecSecret).toBeUndefined();
    const secret = randomBytes(32).toString('base64url');
    expect(loadApiConfig({ ...apiEnv, AO_DEV_CODEC_SECRET: secret }).api.devCodecSecret).toBe(secret);
    expect(() => loadApiConfig({ ...apiEnv, AO_DEV_CODEC_SECRET: 'short' })).toThrow(/AO_DEV_CODEC_SECRET must be 32-256/);
    expect(() => loadApiConfig({ ...apiEnv, AO_DEV_CODEC_SECRET: secret, AO_API_HOST: '0.0.0.0' })).toThrow(/loopback/);
    expect(() => loadApiConfig({ ...apiEnv, AO_DEV_CODEC_WITHOUT_AUTH: 'true' })).toThrow(/no longer supported/);
  });
});

describe('parseTrustProxy (AO_API_TRUST_PROXY)', () => {
  it.each([
    [undefined, false],
    ['', false],
    ['  ', false],
    ['false', false],
    ['0', false],
    ['1', 1],
    ['2', 2],
    ['10.0.0.1', ['10.0.0.1']],
    ['10.0.0.0/8, 192.168.1.0/24', ['10.0.0.0/8', '192.168.1.0/24']],
    ['::1,fd00::/8', ['::1', 'fd00::/8']],
    ['10.0.0.0/255.0.0.0', ['10.0.0.0/255.0.0.0']],
    ['loopback,uniquelocal', ['loopback', 'uniquelocal']],
  ])('%j -> %j', (spec, expected) => {
    expect(parseTrustProxy(spec)).toEqual(expected);
  });

  it.each([
    ['true', /any client choose its address/],
    ['33', /at most 32/],
    ['proxy.example', /neither an address nor a subnet \("proxy.example"\)/],
    ['10.0.0.0/33', /neither an address/],
    ['fd00::/129', /neither an address/],
    ['10.0.0.1,,10.0.0.2', /neither an address/],
    ['-1', /neither an address/],
    ['1.5', /neither an address/],
  ])('refuses %j naming the variable', (spec, reason) => {
    expect(() => parseTrustProxy(spec)).toThrow(ConfigError);
    expect(() => parseTrustProxy(spec)).toThrow(/^AO_API_TRUST_PROXY /);
    expect(() => parseTrustProxy(spec)).toThrow(reason);
  });

  it('is part of the loaded config', () => {
    expect(loadApiConfig({ ...apiEnv }).api.trustProxy).toBe(false);
    expect(loadApiConfig({ ...apiEnv, AO_API_TRUST_PROXY: '1' }).api.trustProxy).toBe(1);
    expect(() => loadApiConfig({ ...apiEnv, AO_API_TRUST_PROXY: 'yes' })).toThrow(/AO_API_TRUST_PROXY/);
  });
});

describe('freshness sweep (AO_FRESHNESS_SWEEP_MS, AO_STALE_AFTER_MS)', () => {
  it('defaults to a sweep every 60 s and stale after 90 s; 0 turns the Schedule off', () => {
    expect(freshnessConfig({})).toEqual({ sweepEveryMs: 60_000, staleAfterMs: 90_000 });
    expect(loadWorkerConfig({ AO_MASTER_KEYS: master }).freshness).toEqual(FRESHNESS_DEFAULTS);
    expect(freshnessConfig({ AO_FRESHNESS_SWEEP_MS: '0', AO_STALE_AFTER_MS: '300000' })).toEqual({ sweepEveryMs: 0, staleAfterMs: 300_000 });
    expect(freshnessConfig({ AO_FRESHNESS_SWEEP_MS: ' 30000 ' }).sweepEveryMs).toBe(30_000);
  });

  it.each([
    ['AO_FRESHNESS_SWEEP_MS', '500'],
    ['AO_FRESHNESS_SWEEP_MS', '60s'],
    ['AO_FRESHNESS_SWEEP_MS', '-1'],
    ['AO_FRESHNESS_SWEEP_MS', '1.5'],
    ['AO_FRESHNESS_SWEEP_MS', String(2 * 24 * 3600_000)],
    ['AO_STALE_AFTER_MS', '0'],
    ['AO_STALE_AFTER_MS', '999'],
    ['AO_STALE_AFTER_MS', 'ninety'],
  ])('refuses %s=%j naming the variable', (name, value) => {
    expect(() => freshnessConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => freshnessConfig({ [name]: value })).toThrow(new RegExp(`^${name} must be milliseconds`));
    expect(() => loadWorkerConfig({ AO_MASTER_KEYS: master, [name]: value })).toThrow(name);
  });
});

describe('INFLUX_CA_FILE', () => {
  const { mkdtempSync, writeFileSync } = require('node:fs') as typeof import('node:fs');
  const dir = mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'ao-ca-'));
  it('is read at start; a missing file or one without a certificate stops the process naming the variable', () => {
    const pem = `${dir}/ca.pem`;
    writeFileSync(pem, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    expect(loadWorkerConfig({ AO_MASTER_KEYS: master, INFLUX_CA_FILE: pem }).influx.ca).toContain('BEGIN CERTIFICATE');
    expect(() => loadWorkerConfig({ AO_MASTER_KEYS: master, INFLUX_CA_FILE: `${dir}/missing.pem` })).toThrow(/INFLUX_CA_FILE=.*cannot be read/);
    writeFileSync(`${dir}/junk.pem`, 'not a certificate');
    expect(() => loadWorkerConfig({ AO_MASTER_KEYS: master, INFLUX_CA_FILE: `${dir}/junk.pem` })).toThrow(/holds no PEM certificate/);
  });
});

describe('inventory sources (AO_INVENTORY_DIRS, AO_INVENTORY_URLS)', () => {
  it('default: nothing is readable', () => {
    expect(inventoryConfig({})).toEqual({ dirs: [], urlPrefixes: [] });
    expect(loadWorkerConfig({ AO_MASTER_KEYS: master }).inventory).toEqual({ dirs: [], urlPrefixes: [] });
  });

  it('reads comma lists', () => {
    expect(inventoryConfig({ AO_INVENTORY_DIRS: ' /srv/inventory/ , /etc/ansible', AO_INVENTORY_URLS: 'https://cmdb.example.com/api/inventory/,http://10.0.0.5:8080' })).toEqual({
      dirs: ['/srv/inventory', '/etc/ansible'],
      urlPrefixes: ['https://cmdb.example.com/api/inventory/', 'http://10.0.0.5:8080/'],
    });
  });

  it.each([
    [{ AO_INVENTORY_DIRS: 'srv/inventory' }, /AO_INVENTORY_DIRS entries must be absolute/],
    [{ AO_INVENTORY_DIRS: '/srv/../etc' }, /AO_INVENTORY_DIRS/],
    [{ AO_INVENTORY_URLS: 'ftp://x/' }, /AO_INVENTORY_URLS entries must be http\(s\) URLs/],
    [{ AO_INVENTORY_URLS: 'cmdb.example.com' }, /AO_INVENTORY_URLS entries must be http\(s\) URLs/],
    [{ AO_INVENTORY_URLS: 'https://u:secret@cmdb.example.com/' }, /must not contain credentials/],
    [{ AO_INVENTORY_URLS: 'https://cmdb.example.com/inv?fleet=a' }, /no query or fragment/],
  ])('refuses %j', (env, why) => {
    expect(() => inventoryConfig(env)).toThrow(why);
    expect(() => inventoryConfig(env)).toThrow(ConfigError);
  });

  it('does not echo credentials', () => {
    expect(() => inventoryConfig({ AO_INVENTORY_URLS: 'https://u:secret@cmdb.example.com/' })).toThrow(expect.objectContaining({ message: expect.not.stringContaining('secret') }));
  });
});
