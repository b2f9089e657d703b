#!/usr/bin/env node
'use strict';
// The CLI lives in TypeScript (apps/cli); this runs the built copy.
let cli;
try {
  cli = require('../dist/apps/cli/main.js');
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes('dist/apps/cli/main.js')) {
    process.stderr.write('agent-onboarding: the CLI is not built yet; run `npm run build` first\n');
    process.exit(1);
  }
  throw err;
}
cli.main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`agent-onboarding: ${err && err.message}\n`);
    process.exitCode = 1;
  },
);
