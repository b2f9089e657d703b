import { Keyring } from '../../../lib/keyring';
import { unsealSecret } from '../../../lib/sealed-secret';
import { HOST_ID_PATTERN } from '../common/validators';
import type { CreateHostDto } from './dto/create-host.dto';
import { canonicalIpv6, deriveHostId, toOnboardHostInput } from './onboard-input.mapper';
import { generateEd25519 } from '../../../activities/ssh/keys';

const keyring = Keyring.forTests('mapper');
const ctx = { sealer: keyring, defaultInfluxUrl: 'http://influx.example:8086' };
const key = generateEd25519();
const dto = (extra: Partial<CreateHostDto>) =>
  ({ address: '10.213.1.5', port: 22, username: 'admin', dataPath: 'tunnel', agentMode: 'artifact', ...extra }) as CreateHostDto;

describe('deriveHostId', () => {
  it.each([
    ['10.213.1.5', 22, '10.213.1.5-22'],
    ['Web-1.Example.internal', 2222, 'web-1.example.internal-2222'],
  ])('%s:%d → %s', (address, port, id) => expect(deriveHostId(address, port)).toBe(id));

  it('IPv6: one id per address however it is written, never the id of a host name', () => {
    const id = deriveHostId('fd00::5', 22);
    expect(id).toMatch(/^fd00-5-[0-9a-f]{12}$/);
    expect(deriveHostId('FD00:0:0::5', 22)).toBe(id);
    expect(deriveHostId('fd00-5', 22)).toBe('fd00-5-22');
    expect(canonicalIpv6('FD00:0000::0005')).toBe('fd00::5');
  });

  it('derived ids stay out of the proxy keepers\' namespace', () => {
    expect(deriveHostId('proxy-1', 22)).not.toMatch(/^proxy-/);
    expect(deriveHostId('proxy-1', 22)).toMatch(HOST_ID_PATTERN);
  });

  it('is stable and always a valid id, even for odd or long names', () => {
    for (const address of ['::1', '::', 'a'.repeat(63) + '.' + 'b'.repeat(63) + '.example', '-x-']) {
      const id = deriveHostId(address, 22);
      expect(id).toMatch(HOST_ID_PATTERN);
      expect(deriveHostId(address, 22)).toBe(id);
      expect(deriveHostId(address, 23)).not.toBe(id);
    }
  });
});

describe('toOnboardHostInput', () => {
  it('seals every secret (unsealable with the same keyring) and keeps no plaintext', () => {
    const input = toOnboardHostInput(
      dto({ password: undefined, privateKey: key.private, passphrase: 'pass-Phrase-77', bastion: { address: '10.213.0.2', port: 22, username: 'jump', password: 'jump-pw' } as never }),
      ctx,
    );
    const json = JSON.stringify(input);
    for (const secret of [key.private, 'pass-Phrase-77', 'jump-pw']) expect(json).not.toContain(secret);
    expect(unsealSecret(keyring, input.target.credential.privateKey!)).toBe(key.private);
    expect(unsealSecret(keyring, input.target.credential.passphrase!)).toBe('pass-Phrase-77');
    expect(input.target.credential.password).toBeUndefined();
    expect(unsealSecret(keyring, input.target.via!.credential.password!)).toBe('jump-pw');
  });

  it('maps a tunnel host with defaults', () => {
    const input = toOnboardHostInput(dto({ password: 'pw' }), ctx);
    expect(input).toMatchObject({
      hostId: '10.213.1.5-22',
      target: { address: '10.213.1.5', port: 22, credential: { username: 'admin' } },
      dataPath: { kind: 'tunnel' },
      agent: { mode: 'artifact' },
    });
    expect(input.target.via).toBeUndefined();
    expect(input.labels).toBeUndefined();
  });

  it('direct: the configured InfluxDB URL unless the request names one', () => {
    expect(toOnboardHostInput(dto({ password: 'pw', dataPath: 'direct' }), ctx).dataPath).toEqual({ kind: 'direct', influxUrl: ctx.defaultInfluxUrl });
    expect(toOnboardHostInput(dto({ password: 'pw', dataPath: 'direct', influxUrl: 'http://10.213.0.1:8086' }), ctx).dataPath).toEqual({
      kind: 'direct',
      influxUrl: 'http://10.213.0.1:8086',
    });
  });

  it('proxy: the bastion is both the jump host and the proxy', () => {
    const bastion = { address: '10.213.0.2', port: 2200, username: 'jump', password: 'j', hostKeySha256: 'SHA256:' + 'k'.repeat(43) };
    const input = toOnboardHostInput(dto({ password: 'pw', dataPath: 'proxy', bastion: bastion as never, expectedHostKeySha256: 'SHA256:' + 'h'.repeat(43), hostId: 'db-1', labels: { env: 'prod' } }), ctx);
    expect(input.hostId).toBe('db-1');
    expect(input.target.hostKeySha256).toBe('SHA256:' + 'h'.repeat(43));
    expect(input.target.via).toMatchObject({ address: '10.213.0.2', port: 2200, hostKeySha256: bastion.hostKeySha256, credential: { username: 'jump' } });
    // No bind address: the workflow binds the bastion's private address as the host sees it, never 0.0.0.0.
    expect(input.dataPath).toEqual({ kind: 'proxy', proxy: input.target.via });
    expect(toOnboardHostInput(dto({ password: 'pw', dataPath: 'proxy', bastion: bastion as never, proxyBindAddress: '10.213.9.1' }), ctx).dataPath).toMatchObject({ bindAddress: '10.213.9.1' });
    expect(input.labels).toEqual({ env: 'prod' });
  });
});
