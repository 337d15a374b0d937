/**
 * Benchmark results: the list of figures, the table with ratios (printed and as markdown), an SVG chart a person
 * can look at (and its PNG when rsvg-convert is installed), and the README block the harness rewrites.
 *
 * A figure whose workload hit its time cap is a bound, not a measurement: the table shows it with ≥ (a time) or
 * ≤ (a rate), and a ratio against it is a bound as well.
 */

export type System = 'swiftfs' | 'rclone' | 's3fs' | 'raw';

export interface Figure {
  workload: string;
  system: System;
  value: number;
  unit: string;
  better: 'higher' | 'lower';
}

/** Figures (by figureKey) whose workload was stopped at its time cap. */
export type CappedSet = ReadonlySet<string>;

export const figureKey = (system: System, workload: string): string => `${system}\t${workload}`;

export const SYSTEMS: System[] = ['swiftfs', 'rclone', 's3fs', 'raw'];

function workloads(figures: Figure[]): string[] {
  return [...new Set(figures.map((f) => f.workload))];
}

/** How many times better swiftfs is than `other` on a workload (>1: swiftfs ahead), or undefined. */
export function advantage(figures: Figure[], workload: string, other: System): number | undefined {
  const mine = figures.find((f) => f.workload === workload && f.system === 'swiftfs');
  const theirs = figures.find((f) => f.workload === workload && f.system === other);
  if (!mine || !theirs || mine.value <= 0 || theirs.value <= 0) return undefined;
  return mine.better === 'higher' ? mine.value / theirs.value : theirs.value / mine.value;
}

export function fmt(v: number): string {
  if (v >= 1000) return Math.round(v).toLocaleString('en-US');
  if (v >= 100) return v.toFixed(1);
  if (v >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

/** The value as shown: a capped time is a lower bound (≥), a capped rate an upper bound (≤). */
function shown(f: Figure, capped: CappedSet): string {
  if (!capped.has(figureKey(f.system, f.workload))) return fmt(f.value);
  return `${f.better === 'lower' ? '≥' : '≤'} ${fmt(f.value)} (capped)`;
}

export function markdownTable(figures: Figure[], capped: CappedSet = new Set()): string {
  const lines = [
    '| workload | unit | swiftfs | rclone | s3fs | raw | vs rclone | vs s3fs | vs raw |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const w of workloads(figures)) {
    const of = (s: System) => figures.find((f) => f.workload === w && f.system === s);
    const any = figures.find((f) => f.workload === w)!;
    const cell = (s: System) => (of(s) ? shown(of(s)!, capped) : '–');
    const ratio = (s: System) => {
      const a = advantage(figures, w, s);
      if (a === undefined) return '–';
      const mineCapped = capped.has(figureKey('swiftfs', w));
      const theirsCapped = capped.has(figureKey(s, w));
      // A capped peer was at least this slow: swiftfs's advantage is at least the ratio (and the other way round).
      const bound = theirsCapped && !mineCapped ? '≥ ' : mineCapped && !theirsCapped ? '≤ ' : mineCapped && theirsCapped ? '~ ' : '';
      return `${bound}${a.toFixed(2)}×`;
    };
    lines.push(`| ${w} | ${any.unit} (${any.better} is better) | ${cell('swiftfs')} | ${cell('rclone')} | ${cell('s3fs')} | ${cell('raw')} | ${ratio('rclone')} | ${ratio('s3fs')} | ${ratio('raw')} |`);
  }
  lines.push(
    '',
    'Ratios are "times better than": above 1.00× swiftfs is ahead (for "lower is better" figures the ratio is theirs/ours). ' +
      '"capped": the workload was stopped at its time cap, so the figure is a bound.',
  );
  return lines.join('\n');
}

const COLORS: Record<System, string> = { swiftfs: '#1f77b4', rclone: '#ff7f0e', s3fs: '#2ca02c', raw: '#7f7f7f' };

/**
 * One block per workload: its name and unit on a line, then one bar per system. The bar is the system's speed
 * relative to the best of the block (for "lower is better" figures, best/value), so a longer bar is always better;
 * the figure itself is written after the bar.
 */
export function svgChart(figures: Figure[], title: string, capped: CappedSet = new Set(), subtitle = ''): string {
  const ws = workloads(figures);
  const barH = 15;
  const titleH = 18;
  const gap = 12;
  const nameW = 70;
  const plotW = 560;
  const width = 20 + nameW + plotW + 190;
  const top = subtitle ? 76 : 60;
  const rows = ws.map((w) => figures.filter((f) => f.workload === w).sort((a, b) => SYSTEMS.indexOf(a.system) - SYSTEMS.indexOf(b.system)));
  const height = top + rows.reduce((h, r) => h + titleH + r.length * barH + gap, 0) + 10;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">${esc(title)}</text>`,
  ];
  if (subtitle) out.push(`<text x="10" y="40" font-size="11" fill="#444">${esc(subtitle)}</text>`);
  const legendY = top - 22;
  SYSTEMS.forEach((s, i) => {
    out.push(`<rect x="${10 + i * 95}" y="${legendY}" width="12" height="12" fill="${COLORS[s]}"/><text x="${10 + i * 95 + 17}" y="${legendY + 11}">${s}</text>`);
  });
  out.push(`<text x="${10 + 4 * 95 + 10}" y="${legendY + 11}" fill="#444">longer bar = better (relative to the best of each block)</text>`);
  let y = top;
  rows.forEach((r, i) => {
    const positive = r.filter((f) => f.value > 0);
    const best = r[0]!.better === 'higher' ? Math.max(...positive.map((f) => f.value)) : Math.min(...positive.map((f) => f.value));
    out.push(`<text x="10" y="${y + 13}" font-weight="bold">${esc(ws[i]!)}</text><text x="${width - 10}" y="${y + 13}" text-anchor="end" fill="#444">${esc(r[0]!.unit)}, ${r[0]!.better} is better</text>`);
    y += titleH;
    for (const f of r) {
      const score = f.value <= 0 ? 0 : f.better === 'higher' ? f.value / best : best / f.value;
      const w = Math.max(1, score * plotW);
      const x = 10 + nameW;
      out.push(`<text x="${x - 6}" y="${y + barH - 4}" text-anchor="end" fill="#333">${f.system}</text>`);
      out.push(`<rect x="${x}" y="${y + 1}" width="${w.toFixed(1)}" height="${barH - 3}" fill="${COLORS[f.system]}"/>`);
      out.push(`<text x="${x + w + 5}" y="${y + barH - 4}">${esc(shown(f, capped))} ${esc(f.unit)}</text>`);
      y += barH;
    }
    y += gap;
  });
  out.push('</svg>');
  return out.join('\n');
}

export const README_START = '<!-- bench:start -->';
export const README_END = '<!-- bench:end -->';

/** Replaces what lies between the bench markers of a README; undefined when the markers are missing. */
export function replaceReadmeBlock(readme: string, block: string): string | undefined {
  const start = readme.indexOf(README_START);
  const end = readme.indexOf(README_END);
  if (start < 0 || end < start) return undefined;
  return `${readme.slice(0, start + README_START.length)}\n${block.trim()}\n${readme.slice(end)}`;
}
