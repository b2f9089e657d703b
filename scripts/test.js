'use strict';
// `npm test`: everything a fresh machine needs, then every test. Extra arguments go to jest.
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const setup = require('./setup');

const started = Date.now();
setup.ensureDependencies();
setup.ensureToolchain();
setup.ensureFleetBase();
setup.run('typecheck', 'npx', ['tsc', '-p', 'tsconfig.json', '--noEmit']);
setup.run('lint', 'npx', ['eslint', '.']);

const out = path.join(setup.root, 'test-results');
fs.mkdirSync(out, { recursive: true });
const args = ['jest', '--json', `--outputFile=${path.join(out, 'jest.json')}`, ...process.argv.slice(2)];
process.stderr.write(`[test] npx ${args.join(' ')}\n`);
const r = spawnSync('npx', args, { cwd: setup.root, stdio: 'inherit' });
process.stderr.write(`[test] wall time ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
process.exit(r.status ?? 1);
