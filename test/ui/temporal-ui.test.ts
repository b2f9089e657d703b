import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection, type WorkflowHandle, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { ApplicationFailure, type Payload } from '@temporalio/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import { bundleWorkflows } from '../../apps/worker/bundle';
import { freePort } from '../../apps/devstack/processes';
import { startTemporalDevServer, type TemporalDevServer } from '../../apps/devstack/services';
import { ensureToolchain } from '../../apps/devstack/toolchain';
import { Keyring } from '../../lib/keyring';
import { EncryptionCodec } from '../../lib/payload-codec';
import { sealSecret } from '../../lib/sealed-secret';
import { dataConverterFor } from '../../lib/temporal';
import { FailureType, workflowIds, type OnboardHostInput } from '../../workflows/contracts';
import { OnboardingPhaseKey } from '../../workflows/search-attributes';
import { eventually, uniqueName } from '../support/stack';
import { onboardingDetails, onboardingSummary } from '../../lib/host-start';

// What an operator sees in the Temporal Web UI: an onboarding parked in needs-credentials is found by its
// HostId search attribute, and its page shows the phase (search attributes, current details through the
// codec endpoint) and the activity summaries. Own dev server: the shared one runs headless.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = path.join(__dirname, '..', '..', 'test-results', 'temporal-ui.png');

// ---- playwright-core is optional: only the parts used here are typed ----
interface PwLocator {
  first(): PwLocator;
  count(): Promise<number>;
  click(): Promise<void>;
  innerText(): Promise<string>;
  waitFor(o?: { timeout?: number }): Promise<void>;
}
interface PwFrame {
  locator(sel: string): PwLocator;
}
interface PwPage {
  goto(url: string): Promise<unknown>;
  url(): string;
  locator(sel: string): PwLocator;
  getByRole(role: string, o: { name: string | RegExp; exact?: boolean }): PwLocator;
  getByText(text: string, o?: { exact?: boolean }): PwLocator;
  frames(): PwFrame[];
  mainFrame(): PwFrame;
  screenshot(o: { path: string; fullPage?: boolean }): Promise<unknown>;
}
interface PwContext {
  newPage(): Promise<PwPage>;
  close(): Promise<void>;
}
interface Playwright {
  chromium: { launchPersistentContext(userDataDir: string, o: Record<string, unknown>): Promise<PwContext> };
}

function loadPlaywright(): Playwright | undefined {
  try {
    // PLAYWRIGHT_CORE_PATH: a playwright-core installed outside this project (local runs before it is a devDependency).
    return require(process.env.PLAYWRIGHT_CORE_PATH ?? 'playwright-core') as Playwright;
  } catch {
    return undefined;
  }
}

const playwright = loadPlaywright();
const missing = [
  !existsSync(CHROMIUM) && `${CHROMIUM} (apt-get install -y chromium)`,
  !playwright && 'playwright-core (npm i -D playwright-core)',
].filter(Boolean);
if (missing.length) console.warn(`temporal-ui.test.ts skipped: missing ${missing.join(' and ')}`);
const describeUi = missing.length ? describe.skip : describe;

// ---- a codec endpoint for the UI, as the API's /codec is in production (decode only, the UI's origin only) ----
function toWire(p: Payload) {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = Buffer.from(v ?? new Uint8Array()).toString('base64');
  return { metadata, data: Buffer.from(p.data ?? new Uint8Array()).toString('base64') };
}
function fromWire(p: { metadata?: Record<string, string>; data?: string }): Payload {
  const metadata: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = Buffer.from(v, 'base64');
  return { metadata, data: Buffer.from(p.data ?? '', 'base64') };
}

async function startCodecEndpoint(keyring: Keyring, uiOrigin: string): Promise<{ url: string; decodes: () => number; close(): Promise<void> }> {
  const codec = new EncryptionCodec(keyring);
  let decodes = 0;
  const server = http.createServer((req, res) => {
    if (req.headers.origin === uiOrigin) res.setHeader('Access-Control-Allow-Origin', uiOrigin);
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'X-Namespace, Authorization, Content-Type');
      res.writeHead(req.headers.origin === uiOrigin ? 204 : 403).end();
      return;
    }
    if (req.method !== 'POST' || req.url !== '/decode') {
      res.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => res.destroy());
    req.on('end', () => {
      void (async () => {
        try {
          const { payloads } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { payloads: Array<{ metadata?: Record<string, string>; data?: string }> };
          const decoded = await codec.decode(payloads.map(fromWire));
          decodes++;
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ payloads: decoded.map(toWire) }));
        } catch {
          res.writeHead(400).end();
        }
      })();
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    decodes: () => decodes,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describeUi('Temporal Web UI shows onboardings (headless Chromium)', () => {
  const keyring = Keyring.forTests('temporal-ui');
  const dirs: string[] = [];
  let server: TemporalDevServer;
  let codec: Awaited<ReturnType<typeof startCodecEndpoint>>;
  let connection: NativeConnection;
  let client: Client;
  let worker: Worker;
  let workerDone: Promise<void>;
  let browser: PwContext;
  let page: PwPage;
  const handles: WorkflowHandle[] = [];

  const tmp = (prefix: string) => {
    const d = mkdtempSync(path.join(os.tmpdir(), prefix));
    dirs.push(d);
    return d;
  };

  beforeAll(async () => {
    const binary = process.env.TEMPORAL_CLI_PATH ?? ensureToolchain().temporal;
    const uiPort = await freePort();
    codec = await startCodecEndpoint(keyring, `http://127.0.0.1:${uiPort}`);
    server = await startTemporalDevServer({ binary, dataDir: tmp('ao-ui-'), port: await freePort(), uiPort, codecEndpoint: codec.url });
    // The UI server comes up after the frontend.
    await eventually(async () => (await fetch(server.uiUrl!)).ok, 60_000, 250);

    connection = await NativeConnection.connect({ address: server.address });
    client = new Client({ connection: await Connection.connect({ address: server.address }), dataConverter: dataConverterFor(keyring) });
    worker = await Worker.create({
      connection,
      taskQueue: 'ui-test',
      workflowBundle: await bundleWorkflows(),
      dataConverter: dataConverterFor(keyring),
      activities: {
        // The bootstrap credential is refused: the onboarding parks in needs-credentials and stays there.
        probeHost: async () => {
          throw ApplicationFailure.create({ type: FailureType.AuthFailed, message: 'authentication refused', nonRetryable: true });
        },
      },
    });
    workerDone = worker.run();

    browser = await playwright!.chromium.launchPersistentContext(tmp('ao-chromium-'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
    });
    page = await browser.newPage();
  }, 180_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await Promise.all(handles.map((h) => h.terminate('test done').catch(() => undefined)));
    if (worker) {
      worker.shutdown();
      await workerDone.catch(() => undefined);
    }
    await connection?.close();
    await client?.connection.close();
    await server?.stop();
    await codec?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function startParked(hostId: string): Promise<WorkflowHandleWithFirstExecutionRunId> {
    const input: OnboardHostInput = {
      hostId,
      target: { address: '10.213.210.10', port: 22, credential: { username: 'bootstrap', password: sealSecret(keyring, 'refused-password') } },
      dataPath: { kind: 'tunnel' },
      agent: { mode: 'artifact' },
    };
    const handle = await client.workflow.start('onboardHost', {
      taskQueue: 'ui-test',
      workflowId: workflowIds.onboarding(hostId),
      args: [input],
      workflowExecutionTimeout: '10m',
      staticSummary: onboardingSummary(input),
      staticDetails: onboardingDetails(input),
    });
    handles.push(handle);
    await eventually(async () => (await handle.describe()).typedSearchAttributes.get(OnboardingPhaseKey) === 'needs-credentials');
    return handle;
  }

  /** Text of the page including its iframes (the UI renders current details as markdown in a sandboxed frame). */
  async function pageText(): Promise<string> {
    const texts = await Promise.all(page.frames().map((f) => f.locator('body').innerText().catch(() => '')));
    return texts.join('\n');
  }

  it('finds the onboarding by HostId and shows its phase, current details and activity summaries', async () => {
    const hostId = uniqueName('ui-host');
    const other = uniqueName('ui-other');
    const handle = await startParked(hostId);
    await startParked(other);
    const workflowId = workflowIds.onboarding(hostId);

    // The list, filtered as an operator would: only this host's onboarding.
    const query = encodeURIComponent(`HostId="${hostId}"`);
    await page.goto(`${server.uiUrl}/namespaces/default/workflows?query=${query}`);
    const link = page.getByRole('link', { name: workflowId, exact: true });
    await link.first().waitFor({ timeout: 30_000 });
    expect(await link.count()).toBe(1);
    const listText = await page.locator('main').innerText();
    expect(listText).toContain('Running');
    expect(listText).not.toContain(workflowIds.onboarding(other));

    // Its page.
    await link.first().click();
    await eventually(async () => page.url().includes(encodeURIComponent(workflowId)) && page.url().includes(handle.firstExecutionRunId), 30_000);

    // Search attributes: plain (never encrypted), so they show without the codec too.
    await page.getByText('Search Attributes', { exact: true }).first().click();
    const attributes = await eventually(async () => {
      const t = await page.locator('main').innerText();
      return t.includes('"OnboardingPhase"') ? t : undefined;
    }, 30_000);
    expect(attributes).toMatch(/"OnboardingPhase":\s*"needs-credentials"/);
    expect(attributes).toContain(`"HostId": "${hostId}"`);
    expect(attributes).toContain('"HostAddress": "10.213.210.10"');

    // User metadata: current details (the workflow's setCurrentDetails, decoded by the codec endpoint) and
    // the summaries of the activities run so far.
    await page.getByText('User Metadata', { exact: true }).first().click();
    // The panels render one by one (current details come from a query through the codec): wait for all of them.
    const text = await eventually(async () => {
      const t = await pageText();
      const ready =
        /needs-credentials\s*—\s*the bootstrap credential was refused/.test(t) &&
        t.includes('probe: SSH login with the bootstrap credential') &&
        t.includes('SSH remote forward on the host');
      return ready ? t : undefined;
    }, 30_000);
    expect(text).toContain(`host ${hostId} at 10.213.210.10:22`);
    expect(text).toContain(`Onboard ${hostId} (bootstrap@10.213.210.10:22)`);
    expect(text).toContain('SSH remote forward on the host');
    expect(text).toContain('probe: SSH login with the bootstrap credential, pin host key, collect facts');
    expect(codec.decodes()).toBeGreaterThan(0);
    // The codec server decodes payloads only: the sealed password is never shown in clear.
    expect(text).not.toContain('refused-password');

    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(existsSync(SCREENSHOT)).toBe(true);
  });
});
