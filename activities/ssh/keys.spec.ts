import { utils } from 'ssh2';
import { generateEd25519 } from './keys';

describe('generateEd25519', () => {
  it('every key parses, with a 32-byte public key, plain and encrypted (ssh2 alone gets ~1 in 256 wrong)', () => {
    for (let i = 0; i < 2000; i++) {
      const pair = generateEd25519({ comment: `k${i}` });
      const parsed = utils.parseKey(pair.private);
      expect(parsed).not.toBeInstanceOf(Error);
      expect((parsed as Exclude<typeof parsed, Error | unknown[]>).getPublicSSH().length).toBe(51);
    }
    const enc = generateEd25519({ passphrase: 'pp', cipher: 'aes256-ctr', rounds: 2 });
    expect(utils.parseKey(enc.private, 'pp')).not.toBeInstanceOf(Error);
  });
});
