// Records the workflow histories that test/replay/replay.test.ts replays against the current code.
//
//   npm run record:histories                      # every scenario
//   npm run record:histories -- onboard-direct    # only the named ones
//   npm run record:histories -- --out /tmp/h      # somewhere else
//
// Uses TEMPORAL_ADDRESS when set, otherwise starts its own headless dev server (and stops it).
// Workers run the real workflow bundle with scripted fake activities (test/replay/scenarios.ts); histories are
// written exactly as the server stores them: payloads encrypted with the fixed fixture keyring.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { temporal } from '@temporalio/proto';
import { bundleWorkflows } from '../apps/worker/bundle';
import { freePort } from '../apps/devstack/processes';
import { startTemporalDevServer, type TemporalDevServer } from '../apps/devstack/services';
import { ensureToolchain } from '../apps/devstack/toolchain';
import { dataConverterFor } from '../lib/temporal';
import { findSecretsInHistory } from '../test/support/history-secrets';
import { historyFromJSONText, historyToJSONText } from '../test/replay/history-json';
import { FIXTURE_SECRETS, fixtureKeyring, scenarios, type CloseKind, type Scenario } from '../test/replay/scenarios';

const DEFAULT_OUT = path.join(__dirname, '..', 'test', 'replay', 'histories');

/** Recorded in every event a worker or client causes; the default (`pid@hostname`) would name this machine. */
const IDENTITY = 'record-histories';

export class RecordingError extends Error {
  override name = 'RecordingError';
}

type History = temporal.api.history.v1.IHistory;

const CLOSE_ATTRIBUTE: Record<CloseKind, keyof temporal.api.history.v1.IHistoryEvent> = {
  completed: 'workflowExecutionCompletedEventAttributes',
  failed: 'workflowExecutionFailedEventAttributes',
  'continued-as-new': 'workflowExecutionContinuedAsNewEventAttributes',
};

function parseArgs(argv: string[]): { out: string; only: string[] } {
  let out = DEFAULT_OUT;
  const only: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') out = path.resolve(argv[++i] ?? '');
    else if (argv[i] === '--help' || argv[i] === '-h') {
      console.log(`usage: record-histories [--out DIR] [SCENARIO...]\nscenarios:\n${scenarios.map((s) => `  ${s.name.padEnd(28)} ${s.about}`).join('\n')}`);
      process.exit(0);
    } else only.push(argv[i]);
  }
  const unknown = only.filter((n) => !scenarios.some((s) => s.name === n));
  if (unknown.length) throw new RecordingError(`unknown scenario(s): ${unknown.join(', ')}`);
  return { out, only };
}

async function recordScenario(
  scenario: Scenario,
  ctx: { connection: NativeConnection; client: Client; bundle: WorkflowBundleWithSourceMap; out: string },
): Promise<string[]> {
  const keyring = fixtureKeyring();
  const run = scenario.prepare(keyring);
  const taskQueue = `record-${scenario.name}-${process.pid}-${Date.now().toString(36)}`;
  const worker = await Worker.create({
    connection: ctx.connection,
    taskQueue,
    workflowBundle: ctx.bundle,
    activities: run.activities,
    dataConverter: dataConverterFor(keyring),
    identity: IDENTITY,
    // Cancellation reaches a fake hold with a heartbeat response; keep that quick.
    maxHeartbeatThrottleInterval: '200ms',
    shutdownGraceTime: '2s',
  });
  const runs = await worker.runUntil(run.drive(ctx.client, taskQueue));

  const written: string[] = [];
  for (const [i, r] of runs.entries()) {
    const history: History = await ctx.client.workflow.getHandle(scenario.workflowId, r.runId).fetchHistory();
    const events = history.events ?? [];
    const last = events[events.length - 1];
    if (!last?.[CLOSE_ATTRIBUTE[r.closesWith]]) {
      throw new RecordingError(`${scenario.name}: run ${i + 1} should close ${r.closesWith}; its last event is ${last?.eventType ?? 'missing'}`);
    }
    // A fixture must replay against the code that recorded it, or it proves nothing later.
    // Replays what was written, so the JSON round trip is checked too.
    const text = historyToJSONText(history);
    await Worker.runReplayHistory({ workflowBundle: ctx.bundle, dataConverter: dataConverterFor(keyring) }, historyFromJSONText(text), scenario.workflowId);
    const leaks = await findSecretsInHistory([history], FIXTURE_SECRETS, keyring);
    if (leaks.length) throw new RecordingError(`${scenario.name}: secrets readable in the history: ${leaks.join('; ')}`);

    const file = path.join(ctx.out, `${scenario.name}${i === 0 ? '' : `.run${i + 1}`}.json`);
    writeFileSync(file, text);
    written.push(`${path.relative(process.cwd(), file)} (${events.length} events, ${r.closesWith})`);
  }
  return written;
}

async function main(): Promise<void> {
  const { out, only } = parseArgs(process.argv.slice(2));
  mkdirSync(out, { recursive: true });
  Runtime.install({ logger: new DefaultLogger('ERROR') }); // scripted activity failures would log as warnings

  let server: TemporalDevServer | undefined;
  let dataDir: string | undefined;
  let address = process.env.TEMPORAL_ADDRESS;
  if (!address) {
    const tools = ensureToolchain();
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'ao-record-'));
    server = await startTemporalDevServer({ binary: tools.temporal, dataDir, port: await freePort() });
    address = server.address;
    console.log(`dev server on ${address}`);
  }

  const keyring = fixtureKeyring();
  const [bundle, connection, clientConnection] = await Promise.all([
    bundleWorkflows(),
    NativeConnection.connect({ address }),
    Connection.connect({ address }),
  ]);
  const client = new Client({ connection: clientConnection, dataConverter: dataConverterFor(keyring), identity: IDENTITY });
  let failed = 0;
  try {
    for (const scenario of scenarios.filter((s) => only.length === 0 || only.includes(s.name))) {
      const started = Date.now();
      try {
        const files = await recordScenario(scenario, { connection, client, bundle, out });
        console.log(`✓ ${scenario.name} (${((Date.now() - started) / 1000).toFixed(1)} s): ${files.join(', ')}`);
      } catch (err) {
        failed++;
        console.error(`✗ ${scenario.name}: ${(err as Error).stack ?? err}`);
      }
    }
  } finally {
    await connection.close();
    await clientConnection.close();
    await server?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }
  if (failed) throw new RecordingError(`${failed} scenario(s) failed`);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err instanceof RecordingError ? err.message : err);
    process.exit(1);
  });
}
