'use strict';
// Shared set-up for `npm start` and `npm test`: dependencies, toolchain, fleet base image.
// Only Node built-ins here: this runs before node_modules exists on a fresh machine.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

function run(what, cmd, args, opts = {}) {
  const started = Date.now();
  process.stderr.write(`[setup] ${what}\n`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.status !== 0) {
    process.stderr.write(`[setup] FAILED: ${what} (${cmd} ${args.join(' ')} exited ${r.status ?? r.signal})\n`);
    process.exit(r.status || 1);
  }
  process.stderr.write(`[setup] ${what}: ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}

/** npm ci when node_modules is missing or older than the lockfile. */
function ensureDependencies() {
  const marker = path.join(root, 'node_modules', '.package-lock.json');
  const lock = path.join(root, 'package-lock.json');
  if (fs.existsSync(marker) && fs.statSync(marker).mtimeMs >= fs.statSync(lock).mtimeMs) return;
  run('npm ci', 'npm', ['ci', '--no-audit', '--no-fund']);
}

function ensureToolchain() {
  run('toolchain (Temporal CLI, Telegraf, InfluxDB, Debian packages)', 'bash', ['deploy/dev/toolchain']);
}

function canRunFleet() {
  return process.platform === 'linux' && typeof process.getuid === 'function' && process.getuid() === 0;
}

function ensureFleetBase() {
  if (!canRunFleet()) {
    process.stderr.write('[setup] not root on Linux: the test fleet (network namespaces) is skipped\n');
    return;
  }
  run('fleet base image (debootstrap, cached)', 'bash', ['deploy/dev/fleet-base']);
}

function build() {
  run('build (tsc)', 'npx', ['tsc', '-p', 'tsconfig.build.json']);
}

module.exports = { root, run, ensureDependencies, ensureToolchain, ensureFleetBase, canRunFleet, build };
