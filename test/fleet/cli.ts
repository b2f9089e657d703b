/**
 * Fleet maintenance entry point, free of jest: `cleanup [prefix] [--all]` removes leftovers of crashed runs
 * (`--all` also removes fleets whose owning process is still alive). Usable as `main(argv)` or run directly once
 * compiled (node dist/test/fleet/cli.js cleanup).
 */
import { cleanupStale } from './cleanup';

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd !== 'cleanup') {
    process.stderr.write('usage: fleet cleanup [netns-prefix, default "ao-"] [--all]\n');
    return 2;
  }
  const includeLive = rest.includes('--all');
  const prefix = rest.find((a) => !a.startsWith('--')) ?? 'ao-';
  const removed = await cleanupStale(prefix, { includeLive });
  process.stdout.write(removed.length ? `removed: ${removed.join(' ')}\n` : 'nothing to remove\n');
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      process.stderr.write(`fleet cleanup failed: ${e.message}\n`);
      process.exit(1);
    },
  );
}
