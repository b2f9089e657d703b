import 'reflect-metadata';
import { inspect } from 'node:util';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { flattenValidationErrors } from '../../common/validation';
import { CreateHostDto } from './create-host.dto';
import { generateEd25519 } from '../../../../activities/ssh/keys';

const key = generateEd25519();
const encrypted = generateEd25519({ passphrase: 'pp', cipher: 'aes256-ctr', rounds: 16 });

async function check(body: Record<string, unknown>) {
  const dto = plainToInstance(CreateHostDto, body);
  const errors = flattenValidationErrors(await validate(dto, { whitelist: true, forbidNonWhitelisted: true, forbidUnknownValues: true }));
  return { dto, errors, fields: errors.map((e) => e.field) };
}

describe('CreateHostDto', () => {
  it('accepts a minimal password login and fills defaults', async () => {
    const { dto, errors } = await check({ address: '10.213.1.5', username: 'admin', password: 'pw' });
    expect(errors).toEqual([]);
    expect(dto).toMatchObject({ port: 22, dataPath: 'tunnel', agentMode: 'artifact' });
  });

  it.each([
    ['IPv6', { address: 'fd00::5' }],
    ['DNS name', { address: 'web-1.example.internal' }],
    ['single-label name', { address: 'web1' }],
    ['OpenSSH key', { password: undefined, privateKey: key.private }],
    ['encrypted key with its passphrase', { password: undefined, privateKey: encrypted.private, passphrase: 'pp' }],
    ['direct with an influx URL', { dataPath: 'direct', influxUrl: 'http://10.213.0.1:8086' }],
    ['proxy with a bastion', { dataPath: 'proxy', bastion: { address: '10.213.0.2', username: 'jump', privateKey: key.private }, proxyBindAddress: '10.213.9.1' }],
    ['labels', { labels: { env: 'prod', 'team/owner': 'infra ops' } }],
    ['pinned key', { expectedHostKeySha256: 'SHA256:' + 'x'.repeat(43) }],
    ['explicit id', { hostId: 'db-1.eu_west' }],
  ])('accepts %s', async (_name, extra) => {
    const body = { address: '10.213.1.5', username: 'admin', password: 'pw', ...extra };
    expect((await check(body)).errors).toEqual([]);
  });

  it.each([
    ['both secrets', { privateKey: key.private }, 'password', 'exactlyOneOf'],
    ['encrypted key, no passphrase', { password: undefined, privateKey: encrypted.private }, 'privateKey', 'isSshPrivateKey'],
    ['public key', { password: undefined, privateKey: key.public }, 'privateKey', 'isSshPrivateKey'],
    ['proxy without bastion', { dataPath: 'proxy' }, 'dataPath', 'proxyNeedsBastion'],
    ['influxUrl without direct', { influxUrl: 'http://x:8086' }, 'influxUrl', 'onlyWhen'],
    ['bind address without proxy', { proxyBindAddress: '10.0.0.1' }, 'proxyBindAddress', 'onlyWhen'],
    ['dotted-quad that is no IP', { address: '999.1.1.1' }, 'address', 'isHostAddress'],
    ['tab in address', { address: 'a\tb' }, 'address', 'isHostAddress'],
  ])('rejects %s', async (_name, extra, field, constraint) => {
    const { errors } = await check({ address: '10.213.1.5', username: 'admin', password: 'pw', ...extra });
    const error = errors.find((e) => e.field === field);
    expect(error?.constraints).toHaveProperty(constraint);
  });

  it('names the passphrase problem precisely and never quotes the key', async () => {
    const { errors } = await check({ address: 'h', username: 'a', privateKey: encrypted.private, passphrase: 'nope' });
    const message = errors.find((e) => e.field === 'privateKey')?.constraints.isSshPrivateKey;
    expect(message).toBe('privateKey could not be decrypted with the given passphrase');
    expect(JSON.stringify(errors)).not.toContain('OPENSSH');
  });

  it('prints and serializes without its secrets', async () => {
    const { dto } = await check({ address: 'h', username: 'a', password: 'hunter2' });
    expect(inspect(dto)).not.toContain('hunter2');
    expect(JSON.stringify({ dto })).not.toContain('hunter2');
    expect(`${JSON.stringify(dto)}`).toBe('"[redacted]"');
  });
});
