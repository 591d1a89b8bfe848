/**
 * Counts typed by people (fuel): digits with optional `_` separators, or
 * `1e9` / `2.5e6` notation, as the CLI's `--fuel` takes them.
 */

/** The whole number `text` names; `undefined` when empty; throws in words otherwise. */
export function parseCount(text: string, label: string): bigint | undefined {
  const raw = text.trim();
  if (raw === "") return undefined;
  const cleaned = raw.replace(/_/g, "");
  if (/^\d+$/.test(cleaned)) return BigInt(cleaned);
  const m = /^(\d+)(?:\.(\d+))?e\+?(\d+)$/i.exec(cleaned);
  if (m) {
    const whole = m[1]!;
    const frac = (m[2] ?? "").replace(/0+$/, "");
    const exp = Number(m[3]);
    // Exact in bigint: 2.5e6 is 25 × 10^5; a fraction left over is not a whole number.
    if (exp >= frac.length && exp <= 30) return BigInt(whole + frac) * 10n ** BigInt(exp - frac.length);
  }
  throw new Error(`${label} must be a whole number, e.g. 1000000, 1_000_000 or 1e9 (not “${raw}”)`);
}
