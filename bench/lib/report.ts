/**
 * Benchmark results: the list of figures, the table with ratios (printed and as markdown), the JSON file, and an
 * SVG chart a person can look at.
 */

export type System = 'swiftfs' | 'rclone' | 's3fs' | 'raw';

export interface Figure {
  workload: string;
  system: System;
  value: number;
  unit: string;
  better: 'higher' | 'lower';
}

const SYSTEMS: System[] = ['swiftfs', 'rclone', 's3fs', 'raw'];

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

function fmt(v: number): string {
  if (v >= 1000) return v.toFixed(0);
  if (v >= 100) return v.toFixed(1);
  if (v >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

export function markdownTable(figures: Figure[]): string {
  const lines = [
    '| workload | unit | swiftfs | rclone | s3fs | raw | vs rclone | vs s3fs | vs raw |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const w of workloads(figures)) {
    const of = (s: System) => figures.find((f) => f.workload === w && f.system === s);
    const any = figures.find((f) => f.workload === w)!;
    const cell = (s: System) => (of(s) ? fmt(of(s)!.value) : '–');
    const ratio = (s: System) => {
      const a = advantage(figures, w, s);
      return a === undefined ? '–' : `${a.toFixed(2)}×`;
    };
    lines.push(`| ${w} | ${any.unit} (${any.better} is better) | ${cell('swiftfs')} | ${cell('rclone')} | ${cell('s3fs')} | ${cell('raw')} | ${ratio('rclone')} | ${ratio('s3fs')} | ${ratio('raw')} |`);
  }
  lines.push('', 'Ratios are "times better than": above 1.00× swiftfs is ahead (for "lower is better" figures the ratio is theirs/ours).');
  return lines.join('\n');
}

const COLORS: Record<System, string> = { swiftfs: '#1f77b4', rclone: '#ff7f0e', s3fs: '#2ca02c', raw: '#7f7f7f' };

/** Horizontal grouped bars, one group per workload, each bar scaled to the best value of its group. */
export function svgChart(figures: Figure[], title: string): string {
  const ws = workloads(figures);
  const barH = 14;
  const groupGap = 16;
  const labelW = 300;
  const plotW = 520;
  const top = 50;
  const rows = ws.map((w) => figures.filter((f) => f.workload === w).sort((a, b) => SYSTEMS.indexOf(a.system) - SYSTEMS.indexOf(b.system)));
  const height = top + rows.reduce((h, r) => h + r.length * barH + groupGap, 0) + 20;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${labelW + plotW + 140}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">${esc(title)}</text>`,
  ];
  SYSTEMS.forEach((s, i) => {
    out.push(`<rect x="${labelW + i * 90}" y="30" width="10" height="10" fill="${COLORS[s]}"/><text x="${labelW + i * 90 + 14}" y="39">${s}</text>`);
  });
  let y = top;
  rows.forEach((r, i) => {
    const best = r[0]!.better === 'higher' ? Math.max(...r.map((f) => f.value)) : Math.min(...r.filter((f) => f.value > 0).map((f) => f.value));
    out.push(`<text x="${labelW - 8}" y="${y + (r.length * barH) / 2 + 4}" text-anchor="end">${esc(ws[i]!)} (${esc(r[0]!.unit)}, ${r[0]!.better} better)</text>`);
    for (const f of r) {
      const score = f.value <= 0 ? 0 : f.better === 'higher' ? f.value / best : best / f.value;
      const w = Math.max(1, score * plotW);
      out.push(`<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH - 2}" fill="${COLORS[f.system]}"/>`);
      out.push(`<text x="${labelW + w + 4}" y="${y + barH - 4}">${fmt(f.value)}</text>`);
      y += barH;
    }
    y += groupGap;
  });
  out.push('</svg>');
  return out.join('\n');
}
