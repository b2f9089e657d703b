import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { FAILURE_CONVERTER_PATH, bundleWorkflows } from '../../apps/worker/bundle';
import { dataConverterFor } from '../../lib/temporal';
import { unsealSecret } from '../../lib/sealed-secret';
import { findSecretsInHistory, sealedSecretsInHistory } from '../support/history-secrets';
import { historyFromJSONText } from './history-json';
import { FIXTURE_SECRETS, fixtureKeyring, scenarioForFixture, scenarios } from './scenarios';

// Recorded histories (scripts/record-histories.ts) replayed against the workflow code as it is now: a change
// that would break running workflows (a reordered, added or removed command without patched()) fails here.
// Replay is local; no server is used.

const HISTORIES = path.join(__dirname, 'histories');
const keyring = fixtureKeyring();
const dataConverter = dataConverterFor(keyring);

const fixtures = readdirSync(HISTORIES)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((file) => {
    const scenario = scenarioForFixture(file);
    return {
      file,
      scenario,
      // Workflows do not read their id, but replay with the real one so that stays true if one ever does.
      workflowId: scenario?.workflowId ?? `replay/${file.replace(/\.json$/, '')}`,
      history: historyFromJSONText(readFileSync(path.join(HISTORIES, file), 'utf8')),
    };
  });

const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: (m: string) => console.error(m) };
const bundleOf = (dir: string) => bundleWorkflowCode({ workflowsPath: require.resolve(dir), failureConverterPath: FAILURE_CONVERTER_PATH, logger: quiet });

let current: WorkflowBundleWithSourceMap;
beforeAll(async () => {
  current = await bundleWorkflows();
});

test('every scenario has a fixture and every fixture belongs to a scenario', () => {
  const files = new Set(fixtures.map((f) => f.file));
  expect(scenarios.filter((s) => !files.has(`${s.name}.json`)).map((s) => s.name)).toEqual([]);
  expect(fixtures.filter((f) => !f.scenario).map((f) => f.file)).toEqual([]);
});

test('every recorded history replays against the current workflow code', async () => {
  const results: string[] = [];
  // One replay worker for all files; it replays them one at a time, in order.
  for await (const r of Worker.runReplayHistories({ workflowBundle: current, dataConverter }, fixtures)) {
    results.push(`${fixtures[results.length].file}: ${r.error ? `${r.error.name}: ${r.error.message}` : 'ok'}`);
  }
  expect(results).toEqual(fixtures.map((f) => `${f.file}: ok`));
});

test('fixtures are stored encrypted: no sealed secret is readable, not even after decoding', async () => {
  expect(await findSecretsInHistory(fixtures.map((f) => f.history), FIXTURE_SECRETS, keyring)).toEqual([]);
});

test('every sealed secret in the recorded histories still opens (v1 secrets of running workflows included)', async () => {
  const sealed = await sealedSecretsInHistory(fixtures.map((f) => f.history), keyring);
  expect(sealed.length).toBeGreaterThan(0);
  const opened = sealed.map((s) => unsealSecret(keyring, { sealed: s }));
  expect(opened.filter((p) => !FIXTURE_SECRETS.includes(p))).toEqual([]);
});

describe('a changed onboardHost', () => {
  const onboardings = fixtures.filter((f) => f.scenario?.workflowType === 'onboardHost');

  test('an activity added without a patch is a DeterminismViolationError for recorded runs', async () => {
    const changed = await bundleOf('./changed/unpatched');
    expect(onboardings.length).toBeGreaterThan(0);
    for (const f of onboardings) {
      await expect(Worker.runReplayHistory({ workflowBundle: changed, dataConverter }, f.history, f.workflowId)).rejects.toBeInstanceOf(DeterminismViolationError);
    }
  });

  test('the same change behind patched() replays recorded runs cleanly', async () => {
    const changed = await bundleOf('./changed/patched');
    for (const f of onboardings) {
      await expect(Worker.runReplayHistory({ workflowBundle: changed, dataConverter }, f.history, f.workflowId)).resolves.toBeUndefined();
    }
  });
});
