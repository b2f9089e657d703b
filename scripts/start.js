'use strict';
// `npm start`: set-up (dependencies, toolchain, fleet base image, build), then the dev stack.
// Arguments go to the dev stack (e.g. `npm start -- --no-demo`).
const path = require('node:path');
const { spawn } = require('node:child_process');
const setup = require('./setup');

setup.ensureDependencies();
setup.ensureToolchain();
if (!process.argv.includes('--no-demo')) setup.ensureFleetBase();
setup.build();

const child = spawn(process.execPath, [path.join(setup.root, 'dist', 'apps', 'devstack', 'main.js'), ...process.argv.slice(2)], {
  cwd: setup.root,
  stdio: 'inherit',
});
// Ctrl-C reaches the whole process group; the dev stack does the orderly shutdown, we wait for it.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
