import type { Client } from '@temporalio/client';
import { NativeConnection, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { bundleWorkflows } from '../../apps/worker/bundle';
import type { Keyring } from '../../lib/keyring';
import { testClient, testStack } from './stack';

/** What a workflow test needs once per file: the bundle, a client and a worker connection to the shared dev server. */
export interface WorkflowTestEnv {
  bundle: WorkflowBundleWithSourceMap;
  client: Client;
  connection: NativeConnection;
}

/** Registers beforeAll/afterAll for the file; the returned object is filled in before the first test runs. */
export function useWorkflowTestEnv(keyring: Keyring): WorkflowTestEnv {
  const env = {} as WorkflowTestEnv;
  beforeAll(async () => {
    [env.bundle, env.client, env.connection] = await Promise.all([
      bundleWorkflows(),
      testClient(keyring),
      NativeConnection.connect({ address: testStack().temporalAddress }),
    ]);
  });
  afterAll(async () => {
    await env.connection?.close();
    await env.client?.connection.close();
  });
  return env;
}
