/**
 * Draws docs/benchmarks.svg (no dependencies) from the `RESULT <name> <json>` lines the benchmarks print:
 * left, controller memory vs held tunnels (ours: worker RSS above its 0-tunnel level; OpenSSH: summed PSS of
 * the ssh clients); right, fleet makespan ours vs by hand per variant.
 *
 *   node -r @swc-node/register bench/tunnels.ts | tee /tmp/tunnels.log
 *   node -r @swc-node/register bench/fleet.ts   | tee /tmp/fleet.log
 *   node -r @swc-node/register bench/plot.ts /tmp/tunnels.log /tmp/fleet.log   # OUT=docs/benchmarks.svg
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

type Mem = { count: number; workerRss: number; sshPss: number };
type FleetRow = { n: number; slow: number; ours: { makespanMs: number }; base: { makespanMs: number } };

function results(files: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of files) {
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      const m = /^RESULT (\w+) (.*)$/.exec(line);
      if (!m) continue;
      const v = JSON.parse(m[2]) as unknown;
      // Several fleet logs (N=10 with its slow variant, N=20) add up to one chart.
      out[m[1]] = Array.isArray(v) && Array.isArray(out[m[1]]) ? [...(out[m[1]] as unknown[]), ...v] : v;
    }
  }
  return out;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
const OURS = '#1f77b4';
const BASE = '#d62728';

function axes(x: number, y: number, w: number, h: number, yMax: number, yLabel: string, title: string): string[] {
  const out = [
    `<text x="${x + w / 2}" y="${y - 12}" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<line x1="${x}" y1="${y + h}" x2="${x + w}" y2="${y + h}" stroke="#333"/>`,
    `<line x1="${x}" y1="${y}" x2="${x}" y2="${y + h}" stroke="#333"/>`,
    `<text x="${x - 42}" y="${y + h / 2}" font-size="12" transform="rotate(-90 ${x - 42} ${y + h / 2})" text-anchor="middle">${esc(yLabel)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    const yy = y + h - (h * i) / 4;
    out.push(`<line x1="${x - 4}" y1="${yy}" x2="${x + w}" y2="${yy}" stroke="#ddd"/>`);
    out.push(`<text x="${x - 8}" y="${yy + 4}" font-size="11" text-anchor="end">${v >= 10 ? v.toFixed(0) : v.toFixed(1)}</text>`);
  }
  return out;
}

function memoryPanel(mem: Mem[], x: number, y: number, w: number, h: number): string[] {
  const zero = mem.find((m) => m.count === 0)?.workerRss ?? mem[0].workerRss;
  const pts = mem.map((m) => ({ c: m.count, ours: Math.max(0, (m.workerRss - zero) / 2 ** 20), base: m.sshPss / 2 ** 20 }));
  const xMax = Math.max(...pts.map((p) => p.c), 1);
  const yMax = Math.max(...pts.flatMap((p) => [p.ours, p.base]), 1) * 1.1;
  const px = (c: number) => x + (w * c) / xMax;
  const py = (v: number) => y + h - (h * v) / yMax;
  const out = axes(x, y, w, h, yMax, 'controller memory (MiB)', 'Memory vs held tunnels');
  for (const p of pts) out.push(`<text x="${px(p.c)}" y="${y + h + 16}" font-size="11" text-anchor="middle">${p.c}</text>`);
  out.push(`<text x="${x + w / 2}" y="${y + h + 34}" font-size="12" text-anchor="middle">tunnels held</text>`);
  for (const [key, color, label] of [['ours', OURS, 'ours: worker RSS above 0 tunnels'], ['base', BASE, 'OpenSSH: ssh clients, summed PSS']] as const) {
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => `${px(p.c).toFixed(1)},${py(p[key]).toFixed(1)}`).join(' ')}"/>`);
    for (const p of pts) out.push(`<circle cx="${px(p.c).toFixed(1)}" cy="${py(p[key]).toFixed(1)}" r="3" fill="${color}"/>`);
    const ly = key === 'ours' ? y + 8 : y + 26;
    out.push(`<rect x="${x + 10}" y="${ly - 8}" width="12" height="4" fill="${color}"/><text x="${x + 28}" y="${ly - 3}" font-size="11">${esc(label)}</text>`);
  }
  return out;
}

function fleetPanel(rows: FleetRow[], x: number, y: number, w: number, h: number): string[] {
  const yMax = Math.max(...rows.flatMap((r) => [r.ours.makespanMs, r.base.makespanMs])) / 1000 * 1.15;
  const out = axes(x, y, w, h, yMax, 'makespan (s)', 'Fleet makespan: ours vs by hand');
  const group = w / rows.length;
  const bw = Math.min(40, group / 3);
  rows.forEach((r, i) => {
    const gx = x + group * i + group / 2;
    for (const [j, v, color] of [[-1, r.ours.makespanMs, OURS], [0, r.base.makespanMs, BASE]] as const) {
      const bh = (h * v) / 1000 / yMax;
      out.push(`<rect x="${(gx + j * bw).toFixed(1)}" y="${(y + h - bh).toFixed(1)}" width="${bw}" height="${bh.toFixed(1)}" fill="${color}"/>`);
      out.push(`<text x="${(gx + j * bw + bw / 2).toFixed(1)}" y="${(y + h - bh - 4).toFixed(1)}" font-size="10" text-anchor="middle">${(v / 1000).toFixed(0)}</text>`);
    }
    out.push(`<text x="${gx}" y="${y + h + 16}" font-size="11" text-anchor="middle">N=${r.n}${r.slow ? `, ${r.slow} slow` : ''}</text>`);
  });
  for (const [k, color, label] of [[0, OURS, 'ours (workflows)'], [1, BASE, 'by hand (ansible-playbook -f N)']] as const) {
    const ly = y + 8 + 18 * k;
    out.push(`<rect x="${x + 10}" y="${ly - 8}" width="12" height="4" fill="${color}"/><text x="${x + 28}" y="${ly - 3}" font-size="11">${esc(label)}</text>`);
  }
  return out;
}

const files = process.argv.slice(2);
if (!files.length) {
  console.error('usage: bench/plot.ts <log with RESULT lines>...');
  process.exit(2);
}
const r = results(files);
const tunnels = r.tunnels as { memory: Mem[] } | undefined;
const fleet = r.fleet as FleetRow[] | undefined;
const parts: string[] = [];
if (tunnels?.memory?.length) parts.push(...memoryPanel(tunnels.memory, 70, 40, 360, 240));
if (fleet?.length) parts.push(...fleetPanel(fleet, 550, 40, 360, 240));
const svg = [
  '<svg xmlns="http://www.w3.org/2000/svg" width="960" height="330" viewBox="0 0 960 330" font-family="sans-serif">',
  '<rect width="100%" height="100%" fill="#fff"/>',
  ...parts,
  '</svg>',
  '',
].join('\n');
const out = process.env.OUT ?? path.join(__dirname, '..', 'docs', 'benchmarks.svg');
writeFileSync(out, svg);
console.log(`wrote ${out}`);
