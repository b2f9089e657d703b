import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exportOpenApi } from './openapi';

// docs/openapi.json is what operators and client generators read: it must match the DTOs in the code.
describe('docs/openapi.json', () => {
  it('is current (regenerate with `npm run openapi`)', async () => {
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'ao-openapi-')), 'openapi.json');
    await exportOpenApi(out);
    const committed = JSON.parse(readFileSync(path.resolve(__dirname, '../../docs/openapi.json'), 'utf8'));
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(committed);
  });
});
