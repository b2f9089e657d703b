import { createHash } from 'node:crypto';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { Client, utils, type ClientChannel, type ConnectConfig } from 'ssh2';
import type { Keyring } from '../../lib/keyring';
import type { Logger } from '../../lib/logging';
import { unsealSecret } from '../../lib/sealed-secret';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType, type SealedSecret, type SshCredential, type SshTarget } from '../../workflows/contracts';
import {
  authFailed, describeKeyError, hostUnreachable, invalidInput, mapSshError, type Endpoint, type Hop,
} from './errors';

/**
 * The one SSH dialer. Every activity that talks SSH comes through here so that every hop has its host key
 * checked (or captured on first contact), keepalives on, errors named, and secrets unsealed only for the
 * instant ssh2 needs them.
 */

/** OpenSSH's fingerprint format: `SHA256:` + unpadded base64 of the SHA-256 of the key blob. */
export function fingerprintSha256(rawKey: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(rawKey).digest('base64').replace(/=+$/, '');
}

/** Accepts `SHA256:abc`, `abc` and padded base64, so a fingerprint pasted from anywhere compares equal. */
export function normalizeFingerprint(fp: string): string {
  return 'SHA256:' + fp.trim().replace(/^SHA256:/i, '').replace(/=+$/, '');
}

/** `<algorithm> <base64>`, the form known_hosts and authorized_keys use, from an SSH wire-format key blob. */
export function openSshPublicKey(rawKey: Buffer): string {
  const len = rawKey.length >= 4 ? rawKey.readUInt32BE(0) : 0;
  const algorithm = rawKey.subarray(4, 4 + len).toString('latin1');
  return `${algorithm} ${rawKey.toString('base64')}`;
}

export interface DialOptions {
  keyring: Keyring;
  /** Connect + handshake + auth budget per hop. */
  readyTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /** Log in to the final hop with this credential instead of `target.credential` (jump hosts keep theirs). */
  credentialOverride?: SshCredential;
  log?: Logger;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit status; null when the command was killed by a signal or the channel closed without one. */
  code: number | null;
  signal?: string;
}

export interface ExecOptions {
  /** Written to the command's stdin, then EOF. Secrets go here, never into `command`. */
  stdin?: string | Buffer;
  /** Per-stream cap; output beyond it is dropped (results travel in Temporal payloads). */
  maxOutputBytes?: number;
  timeoutMs?: number;
}

export interface SshSession {
  readonly client: Client;
  readonly address: string;
  readonly port: number;
  readonly hostKeySha256: string;
  /** The host key as `<algorithm> <base64>` (for a known_hosts line). */
  readonly hostPublicKey: string;
  readonly viaHostKeySha256?: string;
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  close(): Promise<void>;
}

const DEFAULTS = { readyTimeoutMs: 20_000, keepaliveIntervalMs: 10_000, keepaliveCountMax: 3 };

interface Connected {
  client: Client;
  hostKeySha256: string;
  hostPublicKey: string;
}

function unseal(keyring: Keyring, secret: SealedSecret, what: string): string {
  try {
    return unsealSecret(keyring, secret);
  } catch {
    // The reason (unknown key id, tampered ciphertext) is about our keyring, never about the secret's value.
    throw invalidInput(`the ${what} could not be unsealed (unknown key id or corrupted secret)`);
  }
}

/** Turns a sealed credential into ssh2 auth options. Called right before connect; the result is not kept. */
function authOptions(cred: SshCredential | undefined, keyring: Keyring, e: Endpoint): Partial<ConnectConfig> {
  if (!cred || typeof cred.username !== 'string' || cred.username.length === 0) {
    throw invalidInput(`no username given for ${e.address}:${e.port}`);
  }
  if (!cred.password && !cred.privateKey) {
    throw invalidInput(`the credential for ${e.address}:${e.port} has neither a password nor a private key`);
  }
  const out: Partial<ConnectConfig> = { username: cred.username };
  if (cred.privateKey) {
    const privateKey = unseal(keyring, cred.privateKey, 'private key');
    const passphrase = cred.passphrase ? unseal(keyring, cred.passphrase, 'passphrase') : undefined;
    // Parse first so a wrong passphrase or a garbled key is AuthFailed with our wording, not a throw from connect().
    const parsed = utils.parseKey(privateKey, passphrase);
    if (parsed instanceof Error) throw authFailed(e, describeKeyError(parsed));
    out.privateKey = privateKey;
    if (passphrase !== undefined) out.passphrase = passphrase;
  }
  if (cred.password) {
    out.password = unseal(keyring, cred.password, 'password');
    // Hosts with PasswordAuthentication off often still take the password through keyboard-interactive (PAM).
    out.tryKeyboard = true;
  }
  return out;
}

function connectOne(
  target: SshTarget,
  credential: SshCredential,
  opts: DialOptions,
  hop: Hop,
  sock?: Duplex,
): Promise<Connected> {
  const e: Endpoint = { address: target.address, port: target.port, hop };
  const expected = target.hostKeySha256 ? normalizeFingerprint(target.hostKeySha256) : undefined;
  const auth = authOptions(credential, opts.keyring, e);
  return new Promise<Connected>((resolve, reject) => {
    const client = new Client();
    let offered: { fp: string; pub: string } | undefined;
    let mismatch: { expected: string; offered: string } | undefined;
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      client.destroy();
      reject(mapSshError(err, e, mismatch, offered?.fp));
    };
    client.on('error', (err: Error & { level?: string }) => {
      if (!settled) return fail(err);
      // After ready, errors surface through exec/forward callbacks and 'close'; an unhandled 'error' would kill the worker.
      opts.log?.warn('ssh connection error', { address: e.address, port: e.port, hop, error: err.message, level: err.level });
    });
    client.on('close', () => fail(new Error('connection closed before authentication completed')));
    client.on('ready', () => {
      if (settled) return;
      settled = true;
      if (!offered) {
        // Cannot happen with a conforming server: the verifier always runs during the handshake.
        client.destroy();
        reject(hostUnreachable(e, 'no host key was offered'));
        return;
      }
      resolve({ client, hostKeySha256: offered.fp, hostPublicKey: offered.pub });
    });
    if (auth.password !== undefined) {
      const password = auth.password;
      client.on('keyboard-interactive', (_name, _instructions, _lang, prompts, finish) => {
        finish(prompts.map(() => password));
      });
    }
    const config: ConnectConfig = {
      ...auth,
      host: target.address,
      port: target.port,
      sock: sock as ConnectConfig['sock'],
      readyTimeout: opts.readyTimeoutMs ?? DEFAULTS.readyTimeoutMs,
      keepaliveInterval: opts.keepaliveIntervalMs ?? DEFAULTS.keepaliveIntervalMs,
      keepaliveCountMax: opts.keepaliveCountMax ?? DEFAULTS.keepaliveCountMax,
      hostVerifier: (key: Buffer) => {
        offered = { fp: fingerprintSha256(key), pub: openSshPublicKey(key) };
        if (expected && offered.fp !== expected) {
          mismatch = { expected: target.hostKeySha256 as string, offered: offered.fp };
          return false;
        }
        return true;
      },
    };
    try {
      client.connect(config);
    } catch (err) {
      fail(err);
    }
  });
}

/** Opens a direct-tcpip channel from a connected jump host to `address:port`. */
export function forwardOutStream(via: Client, address: string, port: number, hop: Hop = 'target'): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    try {
      via.forwardOut('127.0.0.1', 0, address, port, (err, stream) => {
        if (err) return reject(hostUnreachable({ address, port, hop }, `the jump host could not connect: ${err.message}`));
        stream.on('error', () => undefined); // owners attach their own; this one keeps a late error from crashing us
        resolve(stream);
      });
    } catch (err) {
      reject(hostUnreachable({ address, port, hop }, `the jump host connection is gone: ${(err as Error).message}`));
    }
  });
}

function endClient(client: Client, graceMs = 2_000): Promise<void> {
  return new Promise((resolve) => {
    const sock = (client as unknown as { _sock?: { destroyed?: boolean } })._sock;
    if (!sock || sock.destroyed) return resolve();
    const timer = setTimeout(() => {
      client.destroy();
      resolve();
    }, graceMs);
    client.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    client.end();
  });
}

function execOn(client: Client, e: Endpoint, command: string, opts: ExecOptions = {}): Promise<ExecResult> {
  const max = opts.maxOutputBytes ?? 4 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const start = (err: Error | undefined, stream: ClientChannel) => {
      if (err) return reject(hostUnreachable(e, `could not start a command: ${err.message}`));
      const out: Buffer[] = [];
      const errOut: Buffer[] = [];
      let outLen = 0;
      let errLen = 0;
      let code: number | null = null;
      let signal: string | undefined;
      let timer: NodeJS.Timeout | undefined;
      stream.on('data', (d: Buffer) => {
        if (outLen < max) out.push(d.subarray(0, max - outLen));
        outLen += d.length;
      });
      stream.stderr.on('data', (d: Buffer) => {
        if (errLen < max) errOut.push(d.subarray(0, max - errLen));
        errLen += d.length;
      });
      stream.on('exit', (c: number | null, s?: string) => {
        code = typeof c === 'number' ? c : null;
        if (s) signal = s;
      });
      stream.on('error', (er: Error) => {
        clearTimeout(timer);
        reject(hostUnreachable(e, `command channel failed: ${er.message}`));
      });
      stream.stderr.on('error', () => undefined);
      stream.on('close', () => {
        clearTimeout(timer);
        resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8'), code, signal });
      });
      if (opts.timeoutMs) {
        timer = setTimeout(() => {
          stream.close();
          reject(hostUnreachable(e, `command did not finish within ${opts.timeoutMs} ms`));
        }, opts.timeoutMs);
      }
      stream.end(opts.stdin ?? undefined);
    };
    try {
      client.exec(command, start);
    } catch (err) {
      reject(hostUnreachable(e, `the SSH session is gone: ${(err as Error).message}`));
    }
  });
}

function makeSession(target: SshTarget, c: Connected, via?: SshSession): SshSession {
  const e: Endpoint = { address: target.address, port: target.port };
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      await endClient(c.client);
      await via?.close();
    })();
    return closing;
  };
  // The far end going away must not leave the jump connection open behind it.
  if (via) c.client.once('close', () => void close());
  return {
    client: c.client,
    address: target.address,
    port: target.port,
    hostKeySha256: c.hostKeySha256,
    hostPublicKey: c.hostPublicKey,
    viaHostKeySha256: via?.hostKeySha256,
    exec: (command, opts) => execOn(c.client, e, command, opts),
    close,
  };
}

function validateTarget(target: SshTarget | undefined, depth = 0): asserts target is SshTarget {
  if (!target || typeof target.address !== 'string' || target.address.length === 0) throw invalidInput('SSH target without an address');
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
    throw invalidInput(`SSH target ${target.address} has an invalid port`);
  }
  if (depth > 4) throw invalidInput('too many nested jump hosts');
  if (target.via) validateTarget(target.via, depth + 1);
}

async function dialHop(target: SshTarget, opts: DialOptions, hop: Hop, credential: SshCredential): Promise<SshSession> {
  if (!target.via) return makeSession(target, await connectOne(target, credential, opts, hop));
  const via = await dialHop(target.via, { ...opts, credentialOverride: undefined }, 'via', target.via.credential);
  try {
    const stream = await forwardOutStream(via.client, target.address, target.port, hop);
    return makeSession(target, await connectOne(target, credential, opts, hop, stream), via);
  } catch (err) {
    await via.close();
    throw withViaKey(err, via.hostKeySha256);
  }
}

/** A refused login behind a jump host also names the jump host's key, which was checked (or first seen) on the way. */
function withViaKey(err: unknown, viaHostKeySha256: string): unknown {
  if (!(err instanceof ApplicationFailure) || err.type !== FailureType.AuthFailed) return err;
  const d = (Array.isArray(err.details) ? err.details[0] : undefined) as Record<string, unknown> | undefined;
  if (!d || d.hop !== 'target') return err;
  return ApplicationFailure.create({ type: err.type, message: err.message, nonRetryable: true, details: [{ ...d, viaHostKeySha256 }] });
}

/**
 * Connects to `target` (through `target.via` when set, each hop pinned or captured) and authenticates.
 * Throws named ApplicationFailures: HostKeyMismatch, AuthFailed (non-retryable), HostUnreachable (retryable), InvalidInput.
 */
export async function dialSsh(target: SshTarget, opts: DialOptions): Promise<SshSession> {
  validateTarget(target);
  return dialHop(target, opts, 'target', opts.credentialOverride ?? target.credential);
}

/**
 * Fetches a host's key with a handshake only (no authentication), checking the pin when there is one:
 * how callers that hand the host to OpenSSH (Ansible) write a known_hosts line for a pinned fingerprint.
 * The jump hosts on the way are fully dialed (and pinned) as usual.
 */
export async function scanHostKey(
  target: SshTarget,
  opts: DialOptions,
): Promise<{ hostKeySha256: string; hostPublicKey: string; viaHostKeySha256?: string }> {
  validateTarget(target);
  const via = target.via ? await dialHop(target.via, { ...opts, credentialOverride: undefined }, 'via', target.via.credential) : undefined;
  try {
    const sock = via ? await forwardOutStream(via.client, target.address, target.port) : undefined;
    const key = await handshakeOnly(target, opts, sock);
    return { ...key, viaHostKeySha256: via?.hostKeySha256 };
  } finally {
    await via?.close();
  }
}

function handshakeOnly(target: SshTarget, opts: DialOptions, sock?: Duplex): Promise<{ hostKeySha256: string; hostPublicKey: string }> {
  const e: Endpoint = { address: target.address, port: target.port };
  const expected = target.hostKeySha256 ? normalizeFingerprint(target.hostKeySha256) : undefined;
  return new Promise((resolve, reject) => {
    const client = new Client();
    let seen: { hostKeySha256: string; hostPublicKey: string } | undefined;
    let done = false;
    const finish = (err?: unknown) => {
      if (done) return;
      done = true;
      client.destroy();
      if (seen && (!expected || seen.hostKeySha256 === expected)) return resolve(seen);
      if (seen && expected) return reject(mapSshError(err, e, { expected: target.hostKeySha256 as string, offered: seen.hostKeySha256 }));
      reject(mapSshError(err ?? new Error('connection closed before a host key was offered'), e));
    };
    // Rejecting in the verifier ends the session before any authentication is attempted.
    client.on('error', (err) => finish(err));
    client.on('close', () => finish());
    client.on('ready', () => finish());
    try {
      client.connect({
        host: target.address,
        port: target.port,
        sock: sock as ConnectConfig['sock'],
        username: 'agent-onboarding-keyscan',
        readyTimeout: opts.readyTimeoutMs ?? DEFAULTS.readyTimeoutMs,
        hostVerifier: (key: Buffer) => {
          seen = { hostKeySha256: fingerprintSha256(key), hostPublicKey: openSshPublicKey(key) };
          return false;
        },
      });
    } catch (err) {
      finish(err);
    }
  });
}

export interface JumpListener {
  /** Always 127.0.0.1: only this machine can use the forward. */
  host: string;
  port: number;
  /** The jump host's key (checked against `target.via.hostKeySha256`, or captured). */
  hostKeySha256: string;
  /** The private host's key as seen through the forward (checked against `target.hostKeySha256` when pinned). */
  targetHostKeySha256: string;
  /** `<algorithm> <base64>` of the private host's key, for the known_hosts line OpenSSH needs. */
  targetHostPublicKey: string;
  close(): Promise<void>;
}

/**
 * A local forward through the bastion for tools that speak OpenSSH themselves (Ansible): connections to
 * 127.0.0.1:<port> are carried by `target.via` to `target.address:target.port`. The jump host is dialed (and
 * pinned) here; the private host's key is read once through the forward so the caller can pin it for OpenSSH.
 */
export async function openJumpListener(
  target: SshTarget,
  keyring: Keyring,
  opts: Omit<DialOptions, 'keyring' | 'credentialOverride'> = {},
): Promise<JumpListener> {
  validateTarget(target);
  if (!target.via) throw invalidInput(`openJumpListener: ${target.address} has no jump host`);
  const dialOpts: DialOptions = { ...opts, keyring };
  const via = await dialHop(target.via, dialOpts, 'via', target.via.credential);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => sock.destroy());
    sock.on('close', () => sockets.delete(sock));
    sock.pause();
    forwardOutStream(via.client, target.address, target.port).then(
      (stream) => {
        stream.on('error', () => sock.destroy());
        stream.on('close', () => sock.destroy());
        sock.on('close', () => stream.close());
        sock.pipe(stream).pipe(sock);
        sock.resume();
      },
      (err: Error) => {
        opts.log?.warn('jump forward failed', { address: target.address, port: target.port, error: err.message });
        sock.destroy();
      },
    );
  });
  server.on('error', (err) => opts.log?.warn('jump listener error', { error: err.message }));
  const closeAll = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    await via.close();
  };
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const key = await handshakeOnly(target, dialOpts, await forwardOutStream(via.client, target.address, target.port));
    const port = (server.address() as net.AddressInfo).port;
    let closing: Promise<void> | undefined;
    return {
      host: '127.0.0.1',
      port,
      hostKeySha256: via.hostKeySha256,
      targetHostKeySha256: key.hostKeySha256,
      targetHostPublicKey: key.hostPublicKey,
      close: () => (closing ??= closeAll()),
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
