import { ApplicationFailure } from '@temporalio/common';
import { describeKeyError, mapSshError, scrub, tail } from './errors';

const e = { address: '10.213.0.5', port: 22 };

function failure(err: unknown, hostKey?: { expected: string; offered: string }) {
  const f = mapSshError(err, e, hostKey);
  expect(f).toBeInstanceOf(ApplicationFailure);
  return f;
}

describe('mapSshError', () => {
  it('maps an authentication failure to non-retryable AuthFailed', () => {
    const err = Object.assign(new Error('All configured authentication methods failed'), { level: 'client-authentication' });
    const f = failure(err);
    expect(f.type).toBe('AuthFailed');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('10.213.0.5:22');
  });

  it('maps a rejected host key to HostKeyMismatch with both fingerprints in details', () => {
    const f = failure(Object.assign(new Error('Host denied (verification failed)'), { level: 'handshake' }), {
      expected: 'SHA256:aaa',
      offered: 'SHA256:bbb',
    });
    expect(f.type).toBe('HostKeyMismatch');
    expect(f.nonRetryable).toBe(true);
    expect(f.details?.[0]).toMatchObject({ expected: 'SHA256:aaa', offered: 'SHA256:bbb', address: '10.213.0.5', port: 22 });
  });

  it.each(['ECONNREFUSED', 'EHOSTUNREACH', 'ETIMEDOUT', 'ENETUNREACH'])('maps %s to retryable HostUnreachable', (code) => {
    const f = failure(Object.assign(new Error(`connect ${code}`), { code, level: 'client-socket' }));
    expect(f.type).toBe('HostUnreachable');
    expect(f.nonRetryable).toBe(false);
    expect(f.details?.[0]).toMatchObject({ code });
  });

  it('maps the ready timeout to HostUnreachable', () => {
    const f = failure(Object.assign(new Error('Timed out while waiting for handshake'), { level: 'client-timeout' }));
    expect(f.type).toBe('HostUnreachable');
    expect(f.nonRetryable).toBe(false);
  });

  it('passes named failures through unchanged', () => {
    const named = ApplicationFailure.create({ type: 'InvalidInput', message: 'x', nonRetryable: true });
    expect(mapSshError(named, e)).toBe(named);
  });
});

describe('describeKeyError', () => {
  it('distinguishes missing passphrase, wrong passphrase and unparseable keys', () => {
    expect(describeKeyError(new Error('Encrypted private OpenSSH key detected, but no passphrase given'))).toMatch(/no passphrase/);
    expect(describeKeyError(new Error('OpenSSH key integrity check failed -- bad passphrase?'))).toMatch(/could not be decrypted/);
    expect(describeKeyError(new Error('Unsupported key format'))).toMatch(/could not be parsed/);
  });
});

describe('scrub and tail', () => {
  it('removes every occurrence of a secret', () => {
    expect(scrub('pw=s3cret; again s3cret', ['s3cret', undefined, ''])).toBe('pw=[redacted]; again [redacted]');
  });
  it('keeps only the end of long output', () => {
    const t = tail('x'.repeat(1000) + 'END', [], 10);
    expect(t.endsWith('END')).toBe(true);
    expect(t.length).toBe(11);
  });
});
