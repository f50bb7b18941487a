// Display formatting. Values arrive as decimal strings (exact); they are turned into
// numbers only to be shown, never computed with.

const cache = new Map<number, Intl.NumberFormat>();

function formatter(dp: number): Intl.NumberFormat {
  let f = cache.get(dp);
  if (!f) {
    f = new Intl.NumberFormat("en-US", { minimumFractionDigits: dp, maximumFractionDigits: dp });
    cache.set(dp, f);
  }
  return f;
}

/** Decimal places a decimal string carries ("12.50" -> 2). */
export function decimals(value: string | number | null | undefined): number {
  if (value === null || value === undefined) return 0;
  const s = String(value);
  const dot = s.indexOf(".");
  return dot < 0 ? 0 : s.length - dot - 1;
}

/** Format a decimal string with thousands separators and `dp` places (default: its own, at most 4). */
export function num(value: string | number | null | undefined, dp?: number): string {
  if (value === null || value === undefined || value === "") return "";
  const n = typeof value === "number" ? value : Number(value);
  if (!Number.isFinite(n)) return String(value);
  const places = dp ?? Math.min(4, decimals(value));
  const text = formatter(places).format(n);
  return text === "-0" || /^-0\.0*$/.test(text) ? text.slice(1) : text;
}

/** Money: two places. */
export function money(value: string | number | null | undefined): string {
  return num(value, 2);
}

/** Compact integer counts: 1,234 / 12.3k / 4.5M. */
export function count(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "";
  const a = Math.abs(value);
  if (a >= 1e7) return `${(value / 1e6).toFixed(1)}M`;
  if (a >= 1e5) return `${(value / 1e3).toFixed(1)}k`;
  return formatter(0).format(value);
}

/** Rate per second, one place under 100. */
export function rate(value: number | null | undefined): string {
  if (value === null || value === undefined) return "";
  return Math.abs(value) >= 100 ? formatter(0).format(value) : formatter(1).format(value);
}

/** "pos" / "neg" / "" after the sign of a decimal string, for colouring. */
export function signClass(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return "";
  const n = Number(value);
  return n > 0 ? "pos" : n < 0 ? "neg" : "zero";
}

/** HH:MM:SS of an ISO time, in UTC. */
export function clock(value: string | null | undefined): string {
  if (!value) return "";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toISOString().slice(11, 19);
}

/** YYYY-MM-DD HH:MM:SS of an ISO time, in UTC. */
export function stamp(value: string | null | undefined): string {
  if (!value) return "";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toISOString().slice(0, 19).replace("T", " ");
}
