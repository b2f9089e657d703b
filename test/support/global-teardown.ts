import { rmSync } from 'node:fs';

export default async function globalTeardown(): Promise<void> {
  const stack = globalThis.__aoStack;
  if (!stack) return;
  await Promise.allSettled([stack.temporal.stop(), stack.influx.stop()]);
  if (!process.env.AO_KEEP_TEST_DATA) rmSync(stack.dir, { recursive: true, force: true });
}
