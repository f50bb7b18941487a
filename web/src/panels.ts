// The tables, feeds and figures of the dashboard, rendered from the page's state.
import type { AccountPnL, FinalObligation, Position, RejectedTrade, RiskAlert } from "./api";
import { clock, count, money, num, rate, signClass, stamp } from "./format";
import type { State } from "./main";

const MAX_POSITION_ROWS = 500;
const FLASH_MS = 700;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = "",
  text = "",
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/** Set a cell's text and class only when they changed (keeps DOM work small). */
function setCell(cell: HTMLTableCellElement, text: string, className: string): void {
  if (cell.textContent !== text) cell.textContent = text;
  if (cell.className !== className) cell.className = className;
}

function flash(row: HTMLElement, kind: "up" | "down" | "new"): void {
  const color =
    kind === "up" ? "rgba(38,208,124,0.22)" : kind === "down" ? "rgba(255,92,108,0.22)" : "rgba(79,163,255,0.16)";
  row.animate([{ backgroundColor: color }, { backgroundColor: "transparent" }], {
    duration: FLASH_MS,
    easing: "ease-out",
  });
}

class RowCache {
  private rows = new Map<string, { row: HTMLTableRowElement; seen: number }>();

  get(key: string, cells: number): { row: HTMLTableRowElement; fresh: boolean; seen: number } {
    let entry = this.rows.get(key);
    const fresh = !entry;
    if (!entry) {
      const row = document.createElement("tr");
      for (let i = 0; i < cells; i++) row.appendChild(document.createElement("td"));
      entry = { row, seen: 0 };
      this.rows.set(key, entry);
    }
    const seen = entry.seen;
    entry.seen = performance.now();
    return { row: entry.row, fresh, seen };
  }

  prune(keep: Set<string>): void {
    for (const key of this.rows.keys()) if (!keep.has(key)) this.rows.delete(key);
  }
}

// -- P&L ----------------------------------------------------------------------------------

const pnlRows = new RowCache();
const lastTotals = new Map<string, number>();
const lastFlash = new Map<string, number>();
const PNL_FLASH_EVERY_MS = 3000; // marks move P&L every tick: flash a change, not every tick

export function renderPnl(
  state: State,
  table: HTMLElement,
  hint: HTMLElement,
  select: (account: string | null) => void,
): void {
  const body = table.querySelector("tbody")!;
  const accounts = [...state.pnl.values()].sort((a, b) => a.account.localeCompare(b.account));
  const rows: HTMLTableRowElement[] = [];
  for (const p of accounts) {
    const { row, fresh, seen } = pnlRows.get(p.account, 6);
    if (fresh) row.addEventListener("click", () => select(p.account));
    const c = row.cells;
    setCell(c[0], p.account, "l acct");
    setCell(c[1], p.base_currency, "l ccy");
    setCell(c[2], money(p.realized), `num ${signClass(p.realized)}`);
    setCell(c[3], money(p.unrealized), `num ${signClass(p.unrealized)}`);
    setCell(c[4], money(p.total), `num strong ${signClass(p.total)}`);
    setCell(c[5], p.missing_marks.length ? `${p.positions} ⚠` : String(p.positions), "num dim");
    c[5].title = p.missing_marks.length ? `no mark for ${p.missing_marks.join(", ")}` : "";
    row.classList.toggle("selected", state.accountFilter === p.account);
    const changedAt = state.changed.get(`pnl:${p.account}`) ?? 0;
    const total = Number(p.total);
    const before = lastTotals.get(p.account);
    const now = performance.now();
    if (!fresh && changedAt > seen && before !== undefined && before !== total && now - (lastFlash.get(p.account) ?? 0) > PNL_FLASH_EVERY_MS) {
      flash(c[4], total > before ? "up" : "down");
      lastFlash.set(p.account, now);
    }
    lastTotals.set(p.account, total);
    rows.push(row);
  }
  body.replaceChildren(...rows);
  pnlRows.prune(new Set(accounts.map((p) => p.account)));
  const currencies = new Set(accounts.map((p) => p.base_currency)).size;
  hint.textContent = `${accounts.length} accounts · ${currencies} base ccy · click to filter positions`;
}

// -- positions ----------------------------------------------------------------------------

const positionRows = new RowCache();

export function renderPositions(
  state: State,
  table: HTMLElement,
  hint: HTMLElement,
  filter: string,
  openOnly: boolean,
): void {
  const needle = filter.trim().toLowerCase();
  const matches: Array<[string, Position]> = [];
  for (const [key, p] of state.positions) {
    if (openOnly && Number(p.quantity) === 0) continue;
    if (needle && !key.toLowerCase().includes(needle)) continue;
    matches.push([key, p]);
  }
  matches.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const shown = matches.slice(0, MAX_POSITION_ROWS);
  const body = table.querySelector("tbody")!;
  const rows = shown.map(([key, p]) => {
    const { row, fresh, seen } = positionRows.get(key, 8);
    const c = row.cells;
    setCell(c[0], p.account, "l acct");
    setCell(c[1], p.instrument, "l instr");
    setCell(c[2], p.currency, "l ccy");
    setCell(c[3], num(p.quantity), `num strong ${Number(p.quantity) < 0 ? "short" : Number(p.quantity) > 0 ? "long" : "zero"}`);
    setCell(c[4], num(p.avg_cost, 2), "num");
    setCell(c[5], money(p.realized_pnl), `num ${signClass(p.realized_pnl)}`);
    setCell(c[6], String(p.trade_count), "num dim");
    setCell(c[7], clock(p.as_of), "num dim");
    c[7].title = stamp(p.as_of);
    const changedAt = state.changed.get(key) ?? 0;
    if (!fresh && changedAt > seen) flash(row, "new");
    return row;
  });
  body.replaceChildren(...rows);
  positionRows.prune(new Set(shown.map(([k]) => k)));
  const open = [...state.positions.values()].filter((p) => Number(p.quantity) !== 0).length;
  hint.textContent =
    shown.length < matches.length
      ? `${shown.length} of ${matches.length} shown · ${open} open`
      : `${matches.length} shown · ${open} open`;
}

// -- alerts -------------------------------------------------------------------------------

interface AlertView {
  state: "breach" | "clear" | "info";
  label: string;
  account: string;
  limit: string;
  value: string | null;
  threshold: string | null;
  instrument: string;
  time: string;
  message: string;
}

function text(v: unknown): string {
  return v === undefined || v === null ? "" : String(v);
}

/** Read a risk alert (RiskAlert, generated from domain/schemas.py). */
export function readAlert(a: RiskAlert): AlertView {
  const status = text(a.status).toUpperCase();
  const st = status === "CLEARED" ? "clear" : status === "BREACHED" ? "breach" : "info";
  return {
    state: st,
    label: st === "breach" ? "BREACH" : st === "clear" ? "CLEARED" : status || "ALERT",
    account: text(a.account),
    limit: text(a.limit),
    value: text(a.value) || null,
    threshold: text(a.threshold) || null,
    instrument: text(a.instrument),
    time: text(a.time),
    message: text(a.message),
  };
}

export function renderAlerts(state: State, feed: HTMLElement, hint: HTMLElement): void {
  const items = state.alerts.map((a) => {
    const v = readAlert(a);
    const li = el("li", `alert ${v.state}`);
    const top = el("div", "top");
    top.append(el("span", `badge ${v.state}`, v.label), el("span", "acct", v.account));
    if (v.instrument) top.append(el("span", "instr", v.instrument));
    top.append(el("span", "lim", v.limit.replaceAll("_", " ")), el("span", "time mono", clock(v.time) || ""));
    li.append(top);
    if (v.value !== null || v.threshold !== null) {
      const fig = el("div", "fig mono");
      fig.append(el("span", v.state === "breach" ? "neg strong" : "strong", money(v.value)));
      if (v.threshold !== null) {
        fig.append(el("span", "dim", " / "), el("span", "", money(v.threshold)));
        const pct = (Number(v.value) / Number(v.threshold)) * 100;
        if (Number.isFinite(pct)) {
          fig.append(el("span", `pct ${pct >= 100 ? "neg" : "pos"}`, `${pct.toFixed(0)}%`));
          const bar = el("div", "meter");
          const fill = el("div", pct >= 100 ? "over" : "under");
          fill.style.width = `${Math.min(100, Math.max(0, pct))}%`;
          bar.append(fill);
          li.append(fig, bar);
        } else li.append(fig);
      } else li.append(fig);
    }
    if (v.message) li.append(el("div", "msg", v.message));
    li.title = JSON.stringify(a, null, 1);
    if (state.newAlerts.has(a)) flash(li, v.state === "clear" ? "up" : "down");
    return li;
  });
  state.newAlerts.clear();
  if (!items.length) items.push(el("li", "empty", "no risk alerts"));
  feed.replaceChildren(...items);
  const breaches = activeBreaches(state.alerts);
  hint.innerHTML = "";
  hint.append(
    el("span", breaches ? "neg strong" : "pos", breaches ? `${breaches} limit(s) breached` : "all limits ok"),
    el("span", "dim", ` · ${state.alerts.length} shown`),
  );
}

/** Breaches whose latest alert (per account, limit, instrument) is not a clearing. */
export function activeBreaches(alerts: RiskAlert[]): number {
  const latest = new Map<string, AlertView["state"]>();
  for (const a of alerts) {
    const v = readAlert(a); // newest first: the first one seen per key is the latest
    const key = `${v.account}|${v.limit}|${v.instrument}`;
    if (!latest.has(key)) latest.set(key, v.state);
  }
  return [...latest.values()].filter((s) => s === "breach").length;
}

// -- rejects ------------------------------------------------------------------------------

export function renderRejects(state: State, table: HTMLElement, reasons: HTMLElement, hint: HTMLElement): void {
  const total = [...state.reasons.values()].reduce((a, b) => a + b, 0);
  const top = [...state.reasons.entries()].sort((a, b) => b[1] - a[1]);
  const max = top.length ? top[0][1] : 1;
  reasons.replaceChildren(
    ...top.slice(0, 8).map(([reason, n]) => {
      const chip = el("div", "reason");
      const fill = el("div", "fill");
      fill.style.width = `${(n / max) * 100}%`;
      chip.append(fill, el("span", "name", reason), el("span", "n mono", count(n)));
      return chip;
    }),
  );
  const body = table.querySelector("tbody")!;
  body.replaceChildren(
    ...state.rejects.slice(0, 100).map((r: RejectedTrade) => {
      const row = el("tr");
      const detail = r.detail || r.error || "";
      row.append(
        el("td", "l dim mono", clock(r.rejected_at)),
        el("td", "l mono trade", r.trade_id ?? "—"),
        el("td", "l"),
        el("td", "l detail", detail),
      );
      row.cells[2].append(el("span", "badge reject", r.reason));
      row.title = `${r.stage} · ${r.source_topic}[${r.source_partition}]@${r.source_offset}\n${r.value}`;
      if (state.newRejects.has(r)) flash(row, "down");
      return row;
    }),
  );
  state.newRejects.clear();
  hint.textContent = `${count(total)} since start`;
}

// -- FINAL obligations --------------------------------------------------------------------

const MAX_FINAL_ROWS = 300;
const finalRows = new RowCache();

/** The FINAL obligations (settlement.statements), latest settlement date first. */
export function renderFinals(state: State, table: HTMLElement, hint: HTMLElement): void {
  const finals: FinalObligation[] = [...state.finals.values()].sort(
    (a, b) => b.final.settlement_date.localeCompare(a.final.settlement_date) || a.key.localeCompare(b.key),
  );
  const shown = finals.slice(0, MAX_FINAL_ROWS);
  const body = table.querySelector("tbody")!;
  const rows = shown.map((f) => {
    const { row, fresh, seen } = finalRows.get(f.key, 7);
    const c = row.cells;
    const ob = f.final.obligation;
    const net = ob?.net_cash ?? "0";
    setCell(c[0], f.final.settlement_date, "l mono");
    setCell(c[1], f.final.counterparty, "l acct");
    setCell(c[2], f.final.currency, "l ccy");
    setCell(c[3], money(net), `num strong ${signClass(net)}`);
    setCell(c[4], String(ob?.trade_count ?? 0), "num dim");
    setCell(c[5], String(ob?.securities.length ?? 0), "num dim");
    setCell(c[6], f.adjustments ? String(f.adjustments) : "—", `num ${f.adjustments ? "warn strong" : "dim"}`);
    c[6].title = f.adjustments ? "adjustments after the cut-off: /v1/settlement/adjustments" : "";
    row.title = `cut off ${stamp(f.final.cutoff_at)} · sese.023: /v1/settlement/instructions?counterparty=${f.final.counterparty}&date=${f.final.settlement_date}`;
    const changedAt = state.changed.get(`final:${f.key}`) ?? 0;
    if (!fresh && changedAt > seen) flash(row, "new");
    return row;
  });
  if (!rows.length) {
    const row = el("tr");
    const td = el("td", "l dim", "no obligation is FINAL yet: they become FINAL at their market's cut-off");
    td.colSpan = 7;
    row.append(td);
    body.replaceChildren(row);
  } else body.replaceChildren(...rows);
  finalRows.prune(new Set(shown.map((f) => f.key)));
  const adjusted = finals.filter((f) => f.adjustments > 0).length;
  hint.textContent = `${finals.length} FINAL · ${adjusted} adjusted`;
}

// -- services -----------------------------------------------------------------------------

export function renderServices(
  state: State,
  table: HTMLElement,
  hint: HTMLElement,
  color: (name: string) => string,
): void {
  const body = table.querySelector("tbody")!;
  if (!state.services.length) {
    const row = el("tr");
    const td = el("td", "l dim", "no service metrics configured (--metrics-urls)");
    td.colSpan = 6;
    row.append(td);
    body.replaceChildren(row);
    hint.textContent = "";
    return;
  }
  body.replaceChildren(
    ...state.services.map((s) => {
      const row = el("tr");
      const name = el("td", "l");
      const swatch = el("span", "swatch");
      swatch.style.background = color(s.name);
      name.append(swatch, document.createTextNode(s.name));
      const st = el("td", "l");
      st.append(el("span", `badge ${s.up ? "up" : "down"}`, s.up ? `UP ×${s.instances}` : "DOWN"));
      if (!s.up) st.title = s.error ?? "";
      row.append(
        name,
        st,
        el("td", "num", s.up ? rate(s.records_in_per_s) : "—"),
        el("td", "num", s.up ? rate(s.records_out_per_s) : "—"),
        el("td", `num ${s.consumer_lag_records > 1000 ? "neg strong" : s.consumer_lag_records > 0 ? "warn" : "dim"}`, s.up ? count(s.consumer_lag_records) : "—"),
        el("td", `num ${s.dead_letters_total ? "warn" : "dim"}`, s.up ? count(s.dead_letters_total) : "—"),
      );
      row.title = `${s.url}\nin ${s.records_in_total.toLocaleString("en-US")} · out ${s.records_out_total.toLocaleString("en-US")} · partitions ${s.assigned_partitions} · aborts ${s.transaction_aborts_total}`;
      return row;
    }),
  );
  const down = state.services.filter((s) => !s.up).length;
  hint.textContent = down ? `${down} down` : `${state.services.length} up`;
  hint.className = down ? "hint neg" : "hint";
}

// -- key figures --------------------------------------------------------------------------

function tile(label: string, value: string, cls: string, sub: string): HTMLElement {
  const t = el("div", "kpi");
  t.append(el("div", "label", label), el("div", `value mono ${cls}`, value), el("div", "sub", sub));
  return t;
}

export function renderKpis(state: State, host: HTMLElement): void {
  const byCcy = new Map<string, { total: number; realized: number; unrealized: number; n: number }>();
  for (const p of state.pnl.values() as IterableIterator<AccountPnL>) {
    const t = byCcy.get(p.base_currency) ?? { total: 0, realized: 0, unrealized: 0, n: 0 };
    t.total += Number(p.total);
    t.realized += Number(p.realized);
    t.unrealized += Number(p.unrealized);
    t.n += 1;
    byCcy.set(p.base_currency, t);
  }
  const tiles: HTMLElement[] = [];
  for (const [ccy, t] of [...byCcy.entries()].sort((a, b) => b[1].n - a[1].n).slice(0, 3)) {
    tiles.push(
      tile(`P&L · ${ccy} books`, money(t.total), signClass(t.total), `realized ${money(t.realized)} · unrealized ${money(t.unrealized)}`),
    );
  }
  if (!tiles.length) tiles.push(tile("P&L", "—", "dim", "waiting for pnl"));
  const open = [...state.positions.values()].filter((p) => Number(p.quantity) !== 0).length;
  const accounts = new Set([...state.positions.values()].map((p) => p.account)).size;
  tiles.push(tile("Open positions", count(open), "", `${accounts} accounts · ${state.positions.size} total`));
  const breaches = activeBreaches(state.alerts);
  tiles.push(tile("Limit breaches", String(breaches), breaches ? "neg" : "pos", `${state.alerts.length} alerts shown`));
  const rejected = [...state.reasons.values()].reduce((a, b) => a + b, 0);
  const topReason = [...state.reasons.entries()].sort((a, b) => b[1] - a[1])[0];
  tiles.push(tile("Rejects", count(rejected), rejected ? "warn" : "", topReason ? `top: ${topReason[0]}` : "none"));
  const up = state.services.filter((s) => s.up);
  const inRate = up.length ? Math.max(...up.map((s) => s.records_in_per_s)) : null;
  const maxLag = up.length ? Math.max(...up.map((s) => s.consumer_lag_records)) : null;
  tiles.push(
    tile(
      "Throughput",
      inRate === null ? "—" : `${rate(inRate)}/s`,
      "",
      maxLag === null ? "no service metrics" : `max lag ${count(maxLag)} records`,
    ),
  );
  host.replaceChildren(...tiles);
}
