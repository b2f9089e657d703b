import { Keyring } from '../../../lib/keyring';
import { unsealSecret } from '../../../lib/sealed-secret';
import { memberInput } from '../../../workflows/fleet/members';
import { ApiError } from '../common/api-error';
import type { CreateFleetDto } from './dto/create-fleet.dto';
import { mergeHost, toFleetInput } from './fleet-input.mapper';

const keyring = Keyring.forTests('fleet-mapper');
const ctx = { sealer: keyring, defaultInfluxUrl: 'http://influx.example:8086', defaultConcurrency: 16 };
const fleet = (extra: Partial<CreateFleetDto>): CreateFleetDto => ({ name: 'web-eu', defaults: { username: 'admin', password: 'shared-pw', labels: { env: 'prod' } }, hosts: [], ...extra }) as CreateFleetDto;

function errorsOf(fn: () => unknown): { field: string; constraints: Record<string, string> }[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ApiError) return e.body.errors ?? [];
    throw e;
  }
  throw new Error('no error');
}

describe('toFleetInput', () => {
  it('each host is the defaults with its own fields over them; the shared secret is sealed once; members keep only what differs', () => {
    const input = toFleetInput(
      fleet({ hosts: [{ address: '10.213.1.5' }, { address: '10.213.1.6', port: 2222, labels: { team: 'a' } }, { address: '10.213.1.7', username: 'root', password: 'own-pw' }] }),
      ctx,
    );
    expect(input).toMatchObject({ fleetId: 'web-eu', concurrency: 16 });
    expect(input.members).toEqual([
      { hostId: '10.213.1.5-22', address: '10.213.1.5' },
      { hostId: '10.213.1.6-2222', address: '10.213.1.6', port: 2222, labels: { env: 'prod', team: 'a' } },
      { hostId: '10.213.1.7-22', address: '10.213.1.7', credential: expect.objectContaining({ username: 'root' }) },
    ]);
    const [a, b, c] = input.members.map((m) => memberInput(input.defaults, m));
    expect(a.target.credential.password).toEqual(b.target.credential.password); // one sealed value, not one per host
    expect(unsealSecret(keyring, a.target.credential.password!)).toBe('shared-pw');
    expect(unsealSecret(keyring, c.target.credential.password!)).toBe('own-pw');
    expect(b).toMatchObject({ hostId: '10.213.1.6-2222', target: { address: '10.213.1.6', port: 2222 }, labels: { env: 'prod', team: 'a' }, dataPath: { kind: 'tunnel' } });
    expect(JSON.stringify(input)).not.toContain('shared-pw');
  });

  it('errors name the host and field, or the defaults when the value came from there', () => {
    const errs = errorsOf(() =>
      toFleetInput(fleet({ defaults: { username: 'admin', password: 'pw', agentMode: 'bogus' }, hosts: [{ address: '10.213.1.5' }, { address: '$(id)' }, { address: '10.213.1.5' }] }), ctx),
    );
    const fields = errs.map((e) => e.field);
    expect(fields).toContain('defaults.agentMode');
    expect(fields).toContain('hosts.1.address');
    expect(fields.filter((f) => f === 'defaults.agentMode')).toHaveLength(1); // one error for a bad default, not one per host
  });

  it('duplicate hosts, per-host fields in the defaults and a host without a secret are refused', () => {
    expect(errorsOf(() => toFleetInput(fleet({ hosts: [{ address: '10.213.1.5' }, { address: '10.213.1.5', port: 22 }] }), ctx)).map((e) => e.field)).toEqual(['hosts.1.hostId']);
    expect(errorsOf(() => toFleetInput(fleet({ defaults: { address: '10.213.1.5', username: 'a', password: 'p' }, hosts: [{ address: '10.213.1.6' }] }), ctx)).map((e) => e.field)).toEqual(['defaults.address']);
    expect(errorsOf(() => toFleetInput(fleet({ defaults: {}, hosts: [{ address: '10.213.1.6', username: 'a' }] }), ctx)).map((e) => e.field)).toContain('hosts.0.password');
  });

  it('5,000 hosts sharing one login make a workflow input well under the payload limit', () => {
    const hosts = Array.from({ length: 5000 }, (_, i) => ({ address: `10.${200 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}` }));
    const started = Date.now();
    const input = toFleetInput(fleet({ hosts }), ctx);
    expect(input.members).toHaveLength(5000);
    const bytes = Buffer.byteLength(JSON.stringify(input));
    expect(bytes).toBeLessThan(1024 * 1024);
    console.log(JSON.stringify({ hosts: 5000, inputBytes: bytes, mapMs: Date.now() - started }));
  });

  it('mergeHost: a host with its own key does not get the defaults\' password; labels merge', () => {
    expect(mergeHost({ username: 'a', password: 'p', labels: { env: 'x' } }, { address: 'h', privateKey: 'K', labels: { team: 't' } })).toEqual({ username: 'a', address: 'h', privateKey: 'K', labels: { env: 'x', team: 't' } });
  });
});
