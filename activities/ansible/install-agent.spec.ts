import { ApplicationFailure } from '@temporalio/common';
import { Keyring } from '../../lib/keyring';
import { createLogger } from '../../lib/logging';
import { sealSecret } from '../../lib/sealed-secret';
import type { ActivityDeps } from '../deps';
import { generateEd25519 } from '../ssh/keys';
import { installAgent, installExtraVars, validateInstallInput, type InstallAgentInput } from './install-agent';

// agent.version: validated like the API does (AGENT_VERSION_PATTERN), repo mode only, and handed to the role as
// telegraf_package_version. Everything here happens before any connection.

const keyring = Keyring.forTests('install-agent-spec');
const deps: ActivityDeps = {
  keyring,
  log: createLogger('test'),
  influx: { url: 'http://127.0.0.1:1', token: 'user:secret', org: 'o', bucket: 'b' },
};

function input(agent: InstallAgentInput['agent']): InstallAgentInput {
  return {
    hostId: 'version-1',
    target: {
      // Nothing listens here: an input that passes validation would fail on connecting, never silently succeed.
      address: '127.0.0.1',
      port: 1,
      hostKeySha256: 'SHA256:' + 'A'.repeat(43),
      credential: { username: 'cloudroot', privateKey: sealSecret(keyring, generateEd25519().private) },
    },
    agent,
    outputUrl: 'http://127.0.0.1:8086',
  };
}

function invalidInputOf(fn: () => unknown): ApplicationFailure {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('InvalidInput');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    return err as ApplicationFailure;
  }
  throw new Error('expected InvalidInput');
}

describe('installAgent: agent.version', () => {
  it.each(['1.39.3-1', '1.39.3', '1.30.0~rc1-1', '1.39.3-1+deb12u1'])('accepts %s in repo mode', (version) => {
    expect(() => validateInstallInput(input({ mode: 'repo', version }))).not.toThrow();
  });

  it.each([
    ['empty', ''],
    ['a leading letter', 'v1.39.3'],
    ['a space', '1.39.3 -1'],
    ['a glob', '1.39.*'],
    ['template syntax', '1{{ lookup("pipe","id") }}'],
    ['a quote', "1.39.3'"],
    ['a shell substitution', '1$(id)'],
    ['an apt option', '1.39.3 --allow-downgrades'],
    ['too long', '1' + '0'.repeat(64)],
  ])('refuses %s', (_what, version) => {
    const f = invalidInputOf(() => validateInstallInput(input({ mode: 'repo', version })));
    expect(f.message).toMatch(/^agent\.version must match/);
    // Messages never quote the input.
    if (version.length > 2) expect(f.message).not.toContain(version);
  });

  it('refuses a version that is not a string', () => {
    invalidInputOf(() => validateInstallInput(input({ mode: 'repo', version: 1.39 as unknown as string })));
  });

  it('refuses a version in artifact mode, and with the mode left to its default (artifact)', () => {
    for (const agent of [{ mode: 'artifact' as const, version: '1.39.3-1' }, { version: '1.39.3-1' } as InstallAgentInput['agent']]) {
      const f = invalidInputOf(() => validateInstallInput(input(agent)));
      expect(f.message).toMatch(/repo mode only/);
    }
  });

  it('the activity refuses it before connecting anywhere', async () => {
    const err = await installAgent(deps)(input({ mode: 'artifact', version: '1.39.3-1' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('InvalidInput');
  });

  it('maps the version to the role variable telegraf_package_version', () => {
    const vars = installExtraVars(deps, input({ mode: 'repo', version: '1.39.3-1', interval: '5s' }));
    expect(vars).toMatchObject({ telegraf_install_mode: 'repo', telegraf_package_version: '1.39.3-1', telegraf_interval: '5s', telegraf_artifact_path: '' });
  });

  it('leaves the role default (the newest package) without a version', () => {
    const vars = installExtraVars(deps, input({ mode: 'repo' }));
    expect(vars).toMatchObject({ telegraf_install_mode: 'repo' });
    expect(vars).not.toHaveProperty('telegraf_package_version');
  });
});
