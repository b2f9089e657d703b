import { TokenMatcher } from './token-matcher';

describe('TokenMatcher', () => {
  const matcher = new TokenMatcher(
    new Map([
      ['viewer-token-aaaaaaaaaaaa', 'viewer'],
      ['operator-token-bbbbbbbbbb', 'operator'],
    ]),
  );

  it('finds the role of a configured token', () => {
    expect(matcher.roleOf('viewer-token-aaaaaaaaaaaa')).toBe('viewer');
    expect(matcher.roleOf('operator-token-bbbbbbbbbb')).toBe('operator');
  });

  it.each(['', 'viewer-token-aaaaaaaaaaa', 'viewer-token-aaaaaaaaaaaab', 'VIEWER-TOKEN-AAAAAAAAAAAA', 'x'.repeat(10_000)])(
    'rejects %j',
    (candidate) => expect(matcher.roleOf(candidate)).toBeUndefined(),
  );

  it('with no tokens configured, nothing authenticates', () => {
    expect(new TokenMatcher(new Map()).roleOf('anything-at-all-here')).toBeUndefined();
  });
});
