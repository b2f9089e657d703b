import { Connection, Client } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { EncryptionCodec } from './payload-codec';
import type { AppConfig } from './config';
import type { CodecKeySource } from './keyring';

/**
 * The data converter every client, worker and replayer uses: encrypted payloads, and failure messages and
 * stack traces moved into encrypted attributes. The failure converter is given by path so the workflow
 * sandbox can load it too.
 */
export function dataConverterFor(keys: CodecKeySource): DataConverter {
  return { payloadCodecs: [new EncryptionCodec(keys)], failureConverterPath: require.resolve('./failure-converter') };
}

/** A client with the given payload keys: the API passes its `CodecKeys`, a worker-side tool its `Keyring`. */
export async function connectClient(config: AppConfig, keys: CodecKeySource): Promise<Client> {
  const connection = await Connection.connect({ address: config.temporal.address, tls: config.temporal.tls || undefined });
  return new Client({ connection, namespace: config.temporal.namespace, dataConverter: dataConverterFor(keys) });
}
