import type { INestApplication } from '@nestjs/common';
import type { Client } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { AddressInfo } from 'node:net';
import { createApp } from '../../apps/api/create-app';
import { bundleWorkflows } from '../../apps/worker/bundle';
import { createWorkers, type WorkerSet } from '../../apps/worker/workers';
import type { ApiConfig, WorkerConfig } from '../../lib/config';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { createFleet, type Fleet, type FleetHost } from '../fleet';
import { testClient, testStack, uniqueName } from './stack';

/**
 * What an end-to-end suite runs against, set up once per file: a fleet, a worker on the real activities, and the
 * API over HTTP with only the keys production gives it. Filled in before the first test; torn down after the last
 * (host entities and tunnel keepers are ended, so their forwards close before the fleet goes).
 */
export interface E2eStack {
  keyring: Keyring;
  fleet: Fleet;
  client: Client;
  config: WorkerConfig;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** An API login body for a fleet host's bootstrap user. */
  login(h: FleetHost): { address: string; port: number; username: string; password: string };
}

export interface E2eStackOptions {
  /** Short label for keyrings, task queues and logs. */
  name: string;
  /** Wraps the real activities (tests that change a host between two steps). */
  wrapActivities?: (stack: E2eStack) => Parameters<typeof createWorkers>[0]['wrapActivities'];
  /** Where the worker may read inventory sources (AO_INVENTORY_DIRS / AO_INVENTORY_URLS). */
  inventory?: WorkerConfig['inventory'];
}

export const E2E_OPERATOR_TOKEN = 'e2e-operator-token-0123456789';

export function useE2eStack(opts: E2eStackOptions): E2eStack {
  const stack = {} as E2eStack;
  let connection: NativeConnection;
  let workers: WorkerSet;
  let running: Promise<void>;
  let app: INestApplication;
  let base = '';

  stack.keyring = Keyring.forTests(opts.name);
  stack.login = (h) => ({ address: h.address, port: h.sshPort, username: h.bootstrapUser, password: h.bootstrapPassword });
  stack.api = async (method, path, body) => {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${E2E_OPERATOR_TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json().catch(() => null) };
  };

  beforeAll(async () => {
    const s = testStack();
    stack.config = {
      temporal: { address: s.temporalAddress, namespace: 'default', onboardingTaskQueue: uniqueName(`${opts.name}-onb`), tunnelTaskQueue: uniqueName(`${opts.name}-tun`), tls: false },
      influx: s.influx,
      keyring: stack.keyring,
      api: { host: '127.0.0.1', port: 0, tokens: new Map([[E2E_OPERATOR_TOKEN, 'operator']]), uiOrigin: 'http://127.0.0.1:8233' },
      telegrafArtifact: s.telegrafPath,
      ...(opts.inventory ? { inventory: opts.inventory } : {}),
    };
    [stack.fleet, stack.client, connection] = await Promise.all([createFleet(), testClient(stack.keyring), NativeConnection.connect({ address: s.temporalAddress })]);
    workers = await createWorkers({
      config: stack.config,
      connection,
      bundle: await bundleWorkflows(),
      log: createLogger(`${opts.name}-worker`),
      ...(opts.wrapActivities ? { wrapActivities: opts.wrapActivities(stack) } : {}),
    });
    running = workers.run();
    // The API gets only what production gives it: codec keys and sealing public keys.
    const { keyring: _workerOnly, ...common } = stack.config;
    const apiConfig: ApiConfig = { ...common, keys: stack.keyring.apiKeys() };
    app = await createApp({ config: apiConfig, client: stack.client, logger: false });
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await app?.close();
    workers?.shutdown();
    await running;
    await connection?.close();
    if (stack.client && stack.config) {
      const { tunnelTaskQueue, onboardingTaskQueue } = stack.config.temporal;
      const query = `(TaskQueue='${tunnelTaskQueue}' OR TaskQueue='${onboardingTaskQueue}') AND ExecutionStatus='Running'`;
      for await (const wf of stack.client.workflow.list({ query })) {
        await stack.client.workflow.getHandle(wf.workflowId).terminate('test over').catch(() => undefined);
      }
    }
    await stack.client?.connection.close();
    await stack.fleet?.destroy();
  });

  return stack;
}
