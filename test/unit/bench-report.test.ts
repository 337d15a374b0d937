/**
 * Unit tests of the benchmark's report (bench/lib/report.ts): ratios and their direction, capped figures shown as
 * bounds (in the table and the chart), the chart's content, and the README block rewrite between its markers.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { advantage, figureKey, markdownTable, README_END, README_START, replaceReadmeBlock, svgChart, type Figure } from '../../bench/lib/report.js';

const figures: Figure[] = [
  { workload: 'seq write', system: 'swiftfs', value: 90, unit: 'MiB/s', better: 'higher' },
  { workload: 'seq write', system: 'rclone', value: 45, unit: 'MiB/s', better: 'higher' },
  { workload: 'seq write', system: 's3fs', value: 30, unit: 'MiB/s', better: 'higher' },
  { workload: 'seq write', system: 'raw', value: 100, unit: 'MiB/s', better: 'higher' },
  { workload: 'untar', system: 'swiftfs', value: 10, unit: 's', better: 'lower' },
  { workload: 'untar', system: 'rclone', value: 40, unit: 's', better: 'lower' },
  { workload: 'untar', system: 's3fs', value: 1200, unit: 's', better: 'lower' },
];

const row = (table: string, workload: string) => table.split('\n').find((l) => l.startsWith(`| ${workload} |`))!.split('|').map((c) => c.trim());

describe('bench report', () => {
  it('ratios are "times better than", for higher- and lower-is-better figures', () => {
    assert.equal(advantage(figures, 'seq write', 'rclone'), 2);
    assert.equal(advantage(figures, 'seq write', 'raw'), 0.9);
    assert.equal(advantage(figures, 'untar', 'rclone'), 4);
    assert.equal(advantage(figures, 'untar', 'raw'), undefined);
    const cells = row(markdownTable(figures), 'untar');
    // | workload | unit | swiftfs | rclone | s3fs | raw | vs rclone | vs s3fs | vs raw |
    assert.deepEqual(cells.slice(3, 10), ['10.00', '40.00', '1,200', '–', '4.00×', '120.00×', '–']);
  });

  it('a capped figure is shown as a bound, and so is a ratio against it', () => {
    const capped = new Set([figureKey('s3fs', 'untar'), figureKey('swiftfs', 'seq write')]);
    const table = markdownTable(figures, capped);
    const untar = row(table, 'untar');
    assert.equal(untar[5], '≥ 1,200 (capped)', 'a capped time is a lower bound');
    assert.equal(untar[8], '≥ 120.00×', 'swiftfs is at least that much ahead of a capped peer');
    assert.equal(untar[7], '4.00×');
    const seq = row(table, 'seq write');
    assert.equal(seq[3], '≤ 90.00 (capped)', 'a capped rate is an upper bound');
    assert.equal(seq[7], '≤ 2.00×');
  });

  it('the chart has one block per workload, every value with its unit, capped ones marked', () => {
    const svg = svgChart(figures, 'title <&>', new Set([figureKey('s3fs', 'untar')]), 'sub');
    assert.ok(svg.startsWith('<svg'));
    assert.ok(svg.includes('title &lt;&amp;&gt;'), 'text is escaped');
    assert.equal((svg.match(/font-weight="bold">(seq write|untar)</g) ?? []).length, 2);
    for (const text of ['90.00 MiB/s', '45.00 MiB/s', '10.00 s', '≥ 1,200 (capped) s']) assert.ok(svg.includes(`>${text}<`), text);
    // Bars are relative to the best of a block: the best is full width, a 4x slower one a quarter of it.
    const widths = [...svg.matchAll(/<rect x="\d+" y="[\d.]+" width="([\d.]+)" height="12"/g)].map((m) => Number(m[1]));
    assert.equal(Math.max(...widths), 560);
    assert.ok(widths.includes(140), `expected a 140-wide bar among ${widths.join(',')}`);
  });

  it('rewrites only what lies between the README markers', () => {
    const readme = `# x\n\n## Benchmarks\nintro\n${README_START}\nold table\n${README_END}\n\n## Next\n`;
    const out = replaceReadmeBlock(readme, '| new | table |\n')!;
    assert.equal(out, `# x\n\n## Benchmarks\nintro\n${README_START}\n| new | table |\n${README_END}\n\n## Next\n`);
    assert.equal(replaceReadmeBlock(out, 'again'), `# x\n\n## Benchmarks\nintro\n${README_START}\nagain\n${README_END}\n\n## Next\n`);
    assert.equal(replaceReadmeBlock('# no markers\n', 'x'), undefined);
  });
});
