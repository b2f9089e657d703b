import { ApplicationFailure } from '@temporalio/common';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { sealSecret } from '../../lib/sealed-secret';
import type { SshTarget } from '../../workflows/contracts';
import type { ActivityDeps } from '../deps';
import { parseAuthorizedKey } from './authorized-keys';
import { generateEd25519 } from './keys';
import { addCloudrootKey, retireCloudrootKeys } from './rotate-cloudroot-key';

// What both steps refuse before connecting anywhere (nothing listens on port 1: a check that let an input through
// would fail with HostUnreachable instead).

const keyring = Keyring.forTests('rotate-spec');
const deps: ActivityDeps = { keyring, log: createLogger('test'), influx: { url: 'http://127.0.0.1:1', token: 't:t', org: 'o', bucket: 'b' } };
const key = generateEd25519();
const keySha = parseAuthorizedKey(key.public)!.sha256;
const target: SshTarget = {
  address: '127.0.0.1',
  port: 1,
  hostKeySha256: 'SHA256:' + 'A'.repeat(43),
  credential: { username: 'cloudroot', privateKey: sealSecret(keyring, key.private) },
};

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

describe('key rotation input', () => {
  const add = addCloudrootKey(deps);
  const retire = retireCloudrootKeys(deps);

  it.each([
    ['an unpinned host', { ...target, hostKeySha256: undefined }],
    ['root as the login', { ...target, credential: { ...target.credential, username: 'root' } }],
    ['a password login', { ...target, credential: { username: 'cloudroot', password: sealSecret(keyring, 'pw') } }],
  ])('both refuse %s', async (_what, t) => {
    expect(await failure(add({ hostId: 'h1', target: t }))).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
    expect(await failure(retire({ hostId: 'h1', target: t, keepPublicKeySha256: keySha }))).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
  });

  it('both refuse a host id that is not one', async () => {
    expect(await failure(add({ hostId: 'H 1', target }))).toMatchObject({ type: 'InvalidInput' });
    expect(await failure(retire({ hostId: '../h1', target, keepPublicKeySha256: keySha }))).toMatchObject({ type: 'InvalidInput' });
  });

  it('retire keeps only the key it logs in with, named by a real fingerprint', async () => {
    const other = parseAuthorizedKey(generateEd25519().public)!.sha256;
    for (const keep of [other, 'SHA256:short', 'md5:aa:bb']) {
      expect(await failure(retire({ hostId: 'h1', target, keepPublicKeySha256: keep }))).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
    }
  });

  it('gets past the checks with the login key, in any of the forms a fingerprint is pasted in', async () => {
    for (const keep of [keySha, keySha.slice('SHA256:'.length), `${keySha}=`]) {
      expect(await failure(retire({ hostId: 'h1', target, keepPublicKeySha256: keep }))).toMatchObject({ type: 'HostUnreachable' });
    }
    expect(await failure(add({ hostId: 'h1', target }))).toMatchObject({ type: 'HostUnreachable' });
  });
});
