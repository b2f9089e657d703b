/**
 * POSIX single-quote escaping for the few values that must appear in a remote command line.
 * Never use it for secrets: anything in a command line is visible in `ps` on the host.
 */
export function shellQuote(s: string): string {
  if (s === '') return "''";
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return "'" + s.replace(/'/g, `'\\''`) + "'";
}
