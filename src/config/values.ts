/**
 * Parsers for the value syntaxes of configuration options: sizes ("4M", "64KiB", "1G"), durations ("500ms",
 * "5s", "2m", "1h30m"), booleans, integers (decimal or octal) and enums.
 *
 * Every parser returns the typed value or throws a ValueError whose message says what was expected, with
 * examples; the caller (load.ts) adds the option name and where the value came from. Parsers never see which
 * option they parse, so they never print a secret: the caller decides whether to quote the value.
 */

/** A value did not parse; `expected` says what would have. */
export class ValueError extends Error {
  constructor(readonly expected: string) {
    super(expected);
    this.name = 'ValueError';
  }
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

const SIZE_HELP = 'a size such as 4M, 64KiB, 1G or 1048576 (K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB powers of 1000)';

/** Parses a byte size. A bare number is bytes; K, M, G, T (and KiB...) are binary, KB, MB... decimal. */
export function parseSize(input: string | number): number {
  if (typeof input === 'number') {
    if (Number.isSafeInteger(input) && input >= 0) return input;
    throw new ValueError(SIZE_HELP);
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(input);
  if (!match) throw new ValueError(SIZE_HELP);
  const multiplier = SIZE_UNITS[match[2]!.toLowerCase()];
  if (multiplier === undefined) throw new ValueError(SIZE_HELP);
  const bytes = Math.floor(Number(match[1]) * multiplier);
  if (!Number.isSafeInteger(bytes)) throw new ValueError(`${SIZE_HELP}, below 8 PiB`);
  return bytes;
}

/** Formats bytes the way a person would write them back ("4M", "10G", "1536K", "100"). */
export function formatSize(bytes: number): string {
  for (const [unit, factor] of [['T', 1024 ** 4], ['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return String(bytes);
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const DURATION_HELP = 'a duration with a unit such as 500ms, 5s, 2m, 1h or 1m30s (units: ms, s, m, h, d)';

/** Parses a duration into milliseconds. A unit is required (except for 0), so "1000" is never ambiguous. */
export function parseDuration(input: string | number): number {
  if (input === 0 || input === '0') return 0;
  if (typeof input === 'number') throw new ValueError(DURATION_HELP);
  const text = input.trim().toLowerCase();
  if (text === '') throw new ValueError(DURATION_HELP);
  let total = 0;
  let rest = text;
  while (rest.length > 0) {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)/.exec(rest);
    if (!match) throw new ValueError(DURATION_HELP);
    total += Number(match[1]) * DURATION_UNITS[match[2]!]!;
    rest = rest.slice(match[0].length);
  }
  const ms = Math.round(total);
  if (!Number.isSafeInteger(ms)) throw new ValueError(DURATION_HELP);
  return ms;
}

/** Formats milliseconds compactly ("1s", "500ms", "2m", "1h30m"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  let rest = ms;
  let out = '';
  for (const [unit, factor] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (rest >= factor) {
      out += `${Math.floor(rest / factor)}${unit}`;
      rest %= factor;
    }
  }
  if (rest > 0) out += `${rest}ms`;
  return out;
}

const TRUE_WORDS = new Set(['true', 'yes', 'on', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', '0']);

/** Parses a boolean: true/false, yes/no, on/off, 1/0 (any case). */
export function parseBool(input: string | boolean): boolean {
  if (typeof input === 'boolean') return input;
  const word = input.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  throw new ValueError('true or false (also yes/no, on/off, 1/0)');
}

/** Parses an integer, decimal, or octal when `octal` (then "022", "0o22" and "22" all mean 0o22). */
export function parseInteger(input: string | number, options: { octal?: boolean; min?: number; max?: number } = {}): number {
  let value: number;
  if (typeof input === 'number') {
    value = input;
  } else {
    const text = input.trim();
    if (options.octal) {
      const match = /^(?:0o)?([0-7]+)$/i.exec(text);
      if (!match) throw new ValueError('an octal number such as 022 or 0o077');
      value = parseInt(match[1]!, 8);
    } else {
      if (!/^-?\d+$/.test(text)) throw new ValueError('a whole number');
      value = Number(text);
    }
  }
  if (!Number.isSafeInteger(value)) throw new ValueError('a whole number');
  checkRange(value, options.min, options.max, (n) => (options.octal ? `0${n.toString(8)}` : String(n)));
  return value;
}

/** Throws a ValueError when `value` is outside [min, max]; `show` formats the bounds in the option's syntax. */
export function checkRange(value: number, min: number | undefined, max: number | undefined, show: (n: number) => string): void {
  if (min !== undefined && value < min) {
    throw new ValueError(max === undefined ? `at least ${show(min)}` : `between ${show(min)} and ${show(max)}`);
  }
  if (max !== undefined && value > max) {
    throw new ValueError(min === undefined ? `at most ${show(max)}` : `between ${show(min)} and ${show(max)}`);
  }
}

/** Parses one of `choices`, case-insensitively; returns the choice as declared. */
export function parseEnum<C extends string>(input: string, choices: readonly C[]): C {
  const word = input.trim().toLowerCase();
  const found = choices.find((choice) => choice.toLowerCase() === word);
  if (found === undefined) throw new ValueError(`one of ${choices.join(', ')}`);
  return found;
}
