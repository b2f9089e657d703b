import { Connection, Client } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { EncryptionCodec } from './payload-codec';
import { failureConverter } from './failure-converter';
import type { AppConfig } from './config';
import type { Keyring } from './keyring';

/** The data converter every client, worker and replayer uses: encrypted payloads and failures. */
export function dataConverterFor(keyring: Keyring): DataConverter {
  return { payloadCodecs: [new EncryptionCodec(keyring)], failureConverterPath: require.resolve('./failure-converter') };
}

/** Client-side converter: the client cannot load converters by path, it takes the instance. */
export function clientDataConverterFor(keyring: Keyring): DataConverter {
  return { payloadCodecs: [new EncryptionCodec(keyring)], failureConverter };
}

export async function connectClient(config: AppConfig): Promise<Client> {
  const connection = await Connection.connect({ address: config.temporal.address, tls: config.temporal.tls || undefined });
  return new Client({ connection, namespace: config.temporal.namespace, dataConverter: clientDataConverterFor(config.keyring) });
}
