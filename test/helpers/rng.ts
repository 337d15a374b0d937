/**
 * The deterministic pseudo-random numbers of the tests, bench and test workers: xorshift32, so that a seed
 * printed by a failing run replays the same choices.
 */

/** A generator of integers in [0, n) from `seed` (0 is taken as 1: xorshift never leaves 0). */
export function xorshiftRng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}
