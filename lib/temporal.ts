import { Connection, Client } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { EncryptionCodec } from './payload-codec';
import type { AppConfig } from './config';
import type { Keyring } from './keyring';

/**
 * The data converter every client, worker and replayer uses: encrypted payloads, and failure messages and
 * stack traces moved into encrypted attributes. The failure converter is given by path so the workflow
 * sandbox can load it too.
 */
export function dataConverterFor(keyring: Keyring): DataConverter {
  return { payloadCodecs: [new EncryptionCodec(keyring)], failureConverterPath: require.resolve('./failure-converter') };
}

export async function connectClient(config: AppConfig): Promise<Client> {
  const connection = await Connection.connect({ address: config.temporal.address, tls: config.temporal.tls || undefined });
  return new Client({ connection, namespace: config.temporal.namespace, dataConverter: dataConverterFor(config.keyring) });
}
