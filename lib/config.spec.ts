import { ConfigError, loadConfig, parseTrustProxy } from './config';

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
    const keys = 'k1:' + Buffer.alloc(32, 7).toString('base64');
    expect(loadConfig({ AO_MASTER_KEYS: keys }).api.trustProxy).toBe(false);
    expect(loadConfig({ AO_MASTER_KEYS: keys, AO_API_TRUST_PROXY: '1' }).api.trustProxy).toBe(1);
    expect(() => loadConfig({ AO_MASTER_KEYS: keys, AO_API_TRUST_PROXY: 'yes' })).toThrow(/AO_API_TRUST_PROXY/);
  });
});
