// @ts-check
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');

module.exports = tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'test-results/**', 'deploy/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { require: 'readonly', module: 'writable', process: 'readonly', __dirname: 'readonly', console: 'readonly' } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-require-imports': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  {
    // Workflows run in a deterministic sandbox: no I/O, no Node built-ins, no SDK parts that do I/O.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*', 'fs', 'path', 'os', 'net', 'child_process', 'crypto', 'http', 'https'], message: 'workflows must be deterministic and free of I/O' },
            { group: ['ssh2', 'execa', '@nestjs/*', '@influxdata/*', '@temporalio/activity', '@temporalio/client', '@temporalio/worker'], message: 'workflows may import only @temporalio/workflow, @temporalio/common and their own files' },
            { group: ['../activities', '../activities/*', '../lib/*', '../apps/*'], message: 'only `import type` of activities is allowed in workflows', allowTypeImports: true },
          ],
        },
      ],
    },
  },
);
