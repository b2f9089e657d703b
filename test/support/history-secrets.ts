import type { temporal } from '@temporalio/proto';
import { EncryptionCodec } from '../../lib/payload-codec';
import type { CodecKeySource } from '../../lib/keyring';

const KEY_MARKERS = ['PRIVATE KEY-----', 'BEGIN OPENSSH PRIVATE KEY', 'b3BlbnNzaC1rZXktdjE']; // the last: base64 of "openssh-key-v1"

type History = temporal.api.history.v1.IHistory;

/**
 * Looks for secrets in histories as stored (encrypted) and as the Temporal UI would show them after the codec
 * server decoded every payload. Sealed secrets must stay sealed in both views. Returns "where: what" hits.
 */
export async function findSecretsInHistory(histories: History[], needles: string[], keyring: CodecKeySource): Promise<string[]> {
  const codec = new EncryptionCodec(keyring);
  const hits: string[] = [];
  const check = (where: string, text: string) => {
    for (const n of needles) if (n && text.includes(n)) hits.push(`${where}: bootstrap secret`);
    for (const m of KEY_MARKERS) if (text.includes(m)) hits.push(`${where}: private key marker ${m}`);
  };
  for (const [i, history] of histories.entries()) {
    const raw = JSON.stringify(history, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v));
    check(`history ${i} (stored)`, raw);
    const payloads: temporal.api.common.v1.IPayload[] = [];
    collectPayloads(history, payloads);
    const decoded = await codec.decode(payloads);
    for (const p of decoded) check(`history ${i} (decoded)`, Buffer.from(p.data ?? new Uint8Array()).toString('utf8'));
  }
  return hits;
}

/** Every `{ sealed }` value in the histories' payloads, as the codec server would show them (decoded). */
export async function sealedSecretsInHistory(histories: History[], keys: CodecKeySource): Promise<string[]> {
  const codec = new EncryptionCodec(keys);
  const found: string[] = [];
  for (const history of histories) {
    const payloads: temporal.api.common.v1.IPayload[] = [];
    collectPayloads(history, payloads);
    for (const p of await codec.decode(payloads)) {
      const text = Buffer.from(p.data ?? new Uint8Array()).toString('utf8');
      for (const m of text.matchAll(/"sealed":"(v\d+\.[A-Za-z0-9_.-]+)"/g)) found.push(m[1]);
    }
  }
  return found;
}

function collectPayloads(node: unknown, out: temporal.api.common.v1.IPayload[], depth = 0): void {
  if (!node || typeof node !== 'object' || depth > 40) return;
  if (node instanceof Uint8Array) return;
  const obj = node as Record<string, unknown>;
  if (obj.metadata && typeof obj.metadata === 'object' && 'data' in obj && !(obj.metadata instanceof Uint8Array)) {
    out.push(obj as temporal.api.common.v1.IPayload);
    return;
  }
  for (const v of Object.values(obj)) collectPayloads(v, out, depth + 1);
}
