import { utils } from 'ssh2';

type KeyOptions = Parameters<typeof utils.generateKeyPairSync>[1];

/** An ed25519 key's SSH wire blob: string "ssh-ed25519" (4 + 11) and the 32-byte key (4 + 32). */
const ED25519_BLOB_LENGTH = 51;
const MAX_TRIES = 16;

/**
 * An ed25519 key pair in OpenSSH format that ssh2 and OpenSSH both read back. ssh2's generateKeyPairSync drops a
 * leading zero byte of the public key (about 1 key in 256): the key then parses nowhere and sshd refuses it. Such a
 * pair is thrown away and another generated — the one place keys are made, for services and tests alike.
 */
export function generateEd25519(opts: KeyOptions = {}): { private: string; public: string } {
  for (let i = 0; i < MAX_TRIES; i++) {
    const pair = utils.generateKeyPairSync('ed25519', opts as never);
    const parsed = utils.parseKey(pair.private, (opts as { passphrase?: string }).passphrase);
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (key && !(key instanceof Error) && key.getPublicSSH().length === ED25519_BLOB_LENGTH) return pair;
  }
  throw new Error(`no well-formed ed25519 key in ${MAX_TRIES} tries`);
}
