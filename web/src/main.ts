// The tradeflux dashboard: snapshots from /v1/*, then live updates from /v1/stream.
import "./style.css";
import {
  type AccountPnL,
  type FinalObligation,
  type AffirmationException,
  type Allocation,
  type AllocationAck,
  type Confirmation,
  type FollowerStatus,
  type ObligationStatement,
  type Bar,
  type RiskAlert,
  type Page,
  type Position,
  type RejectedTrade,
  type ServiceStatus,
  type Status,
  follow,
  getJson,
} from "./api";
import { BarChart, type Candle, ThroughputChart, barInstrument, toCandle } from "./charts";
import { renderAlerts, renderFinals, renderKpis, renderPnl, renderPositions, renderRejects, renderServices } from "./panels";
import {
  type PostTradeState,
  applyPostTrade,
  emptyPostTrade,
  renderAffirmations,
  renderAllocations,
} from "./postrade";

const MAX_FEED = 200;

/** Everything the page shows, keyed as the API keys it. */
export interface State {
  positions: Map<string, Position>;
  changed: Map<string, number>; // key -> time of the last live change (for the flash)
  pnl: Map<string, AccountPnL>;
  alerts: RiskAlert[];
  rejects: RejectedTrade[];
  reasons: Map<string, number>;
  bars: Map<string, Map<number, Candle>>;
  services: ServiceStatus[];
  finals: Map<string, FinalObligation>;
  status: Status | null;
  accountFilter: string | null;
  newAlerts: Set<RiskAlert>;
  newRejects: Set<RejectedTrade>;
  postTrade: PostTradeState;
}

const state: State = {
  positions: new Map(),
  changed: new Map(),
  pnl: new Map(),
  alerts: [],
  rejects: [],
  reasons: new Map(),
  bars: new Map(),
  services: [],
  finals: new Map(),
  status: null,
  accountFilter: null,
  newAlerts: new Set(),
  newRejects: new Set(),
  postTrade: emptyPostTrade(),
};

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const dirty = new Set<string>();
let scheduled = false;
function invalidate(...panels: string[]): void {
  for (const p of panels) dirty.add(p);
  if (!scheduled) {
    scheduled = true;
    setTimeout(() => requestAnimationFrame(render), 120);
  }
}

let barChart: BarChart | null = null;
let throughput: ThroughputChart | null = null;
let selectedInstrument = "";
let instrumentsShown = "";
let refitBars = true; // after a snapshot, show the latest bars whatever was zoomed before

function render(): void {
  scheduled = false;
  const panels = new Set(dirty);
  dirty.clear();
  if (panels.has("pnl")) renderPnl(state, $("pnl-table"), $("pnl-hint"), selectAccount);
  if (panels.has("positions")) {
    renderPositions(state, $("pos-table"), $("pos-hint"), $<HTMLInputElement>("pos-filter").value, $<HTMLInputElement>("pos-open").checked);
  }
  if (panels.has("alerts")) renderAlerts(state, $("alerts-feed"), $("alerts-hint"));
  if (panels.has("rejects")) renderRejects(state, $("rej-table"), $("rej-reasons"), $("rej-hint"));
  if (panels.has("services")) renderServices(state, $("svc-table"), $("svc-hint"), (n) => throughput?.color(n) ?? "#888");
  if (panels.has("bars")) renderBars();
  if (panels.has("finals")) renderFinals(state, $("final-table"), $("final-hint"));
  if (panels.has("allocations")) renderAllocations(state.postTrade, $("alloc-table"), $("alloc-hint"));
  if (panels.has("affirmations")) {
    renderAffirmations(state.postTrade, $("aff-status"), $("aff-table"), $("aff-hint"));
  }
  renderKpis(state, $("kpis"));
}

function selectAccount(account: string | null): void {
  state.accountFilter = state.accountFilter === account ? null : account;
  $<HTMLInputElement>("pos-filter").value = state.accountFilter ?? "";
  invalidate("pnl", "positions");
}

// -- bars ---------------------------------------------------------------------------------

function addBar(raw: Bar): Candle | null {
  const candle = toCandle(raw);
  const instrument = barInstrument(raw);
  if (!candle || !instrument) return null;
  let series = state.bars.get(instrument);
  if (!series) state.bars.set(instrument, (series = new Map()));
  series.set(candle.time, candle);
  return candle;
}

function sortedCandles(instrument: string): Candle[] {
  return [...(state.bars.get(instrument)?.values() ?? [])].sort((a, b) => a.time - b.time);
}

function renderBars(): void {
  const select = $<HTMLSelectElement>("bar-instrument");
  const names = [...state.bars.keys()].sort((a, b) => (state.bars.get(b)?.size ?? 0) - (state.bars.get(a)?.size ?? 0) || a.localeCompare(b));
  const listed = [...names].sort().join("|");
  if (listed !== instrumentsShown) {
    instrumentsShown = listed;
    select.replaceChildren(
      ...[...names].sort().map((n) => {
        const o = document.createElement("option");
        o.value = n;
        o.textContent = n;
        return o;
      }),
    );
  }
  if (!selectedInstrument || !state.bars.has(selectedInstrument)) selectedInstrument = names[0] ?? "";
  select.value = selectedInstrument;
  $("bar-empty").hidden = names.length > 0;
  if (!selectedInstrument) return;
  barChart ??= new BarChart($("bar-chart"));
  const candles = sortedCandles(selectedInstrument);
  barChart.show(selectedInstrument, candles, refitBars);
  refitBars = false;
  showLegend(candles[candles.length - 1]);
}

function showLegend(c: Candle | undefined): void {
  const legend = $("bar-legend");
  if (!c) {
    legend.textContent = "";
    return;
  }
  const cls = c.close >= c.open ? "pos" : "neg";
  const parts: Array<[string, string]> = [
    ["O", c.open.toString()],
    ["H", c.high.toString()],
    ["L", c.low.toString()],
    ["C", c.close.toString()],
    ["V", c.volume.toLocaleString("en-US")],
  ];
  if (c.vwap !== null) parts.push(["VWAP", c.vwap]);
  if (c.count !== null) parts.push(["N", String(c.count)]);
  legend.replaceChildren(
    ...parts.map(([k, v]) => {
      const span = document.createElement("span");
      const key = document.createElement("b");
      key.textContent = k;
      const val = document.createElement("span");
      val.className = k === "C" ? cls : "";
      val.textContent = v;
      span.append(key, val);
      return span;
    }),
  );
}

// -- live events --------------------------------------------------------------------------

function onEvent(kind: string, data: unknown): void {
  if (applyPostTrade(state.postTrade, kind, data)) {
    invalidate(kind.startsWith("allocation") ? "allocations" : "affirmations");
    return;
  }
  switch (kind) {
    case "position": {
      const p = data as Position;
      const key = `${p.account}|${p.instrument}`;
      state.positions.set(key, p);
      state.changed.set(key, performance.now());
      invalidate("positions");
      break;
    }
    case "pnl": {
      const p = data as AccountPnL;
      state.pnl.set(p.account, p);
      state.changed.set(`pnl:${p.account}`, performance.now());
      invalidate("pnl");
      break;
    }
    case "alert": {
      const a = data as RiskAlert;
      state.alerts.unshift(a);
      state.newAlerts.add(a);
      state.alerts.length = Math.min(state.alerts.length, MAX_FEED);
      invalidate("alerts");
      break;
    }
    case "reject": {
      const r = data as RejectedTrade;
      state.rejects.unshift(r);
      state.newRejects.add(r);
      state.rejects.length = Math.min(state.rejects.length, MAX_FEED);
      state.reasons.set(r.reason, (state.reasons.get(r.reason) ?? 0) + 1);
      invalidate("rejects");
      break;
    }
    case "bar": {
      const raw = data as Bar;
      const instrument = barInstrument(raw);
      const known = state.bars.has(instrument);
      const candle = addBar(raw);
      if (!candle) break;
      if (known && instrument === selectedInstrument && barChart?.update(candle)) showLegend(candle);
      else if (!known || instrument === selectedInstrument) invalidate("bars");
      break;
    }
    case "final": {
      const f = data as FinalObligation;
      state.finals.set(f.key, f);
      state.changed.set(`final:${f.key}`, performance.now());
      invalidate("finals");
      break;
    }
    case "adjustment": {
      const a = data as ObligationStatement;
      const key = `${a.counterparty}|${a.currency}|${a.settlement_date}`;
      const f = state.finals.get(key);
      if (f) {
        state.finals.set(key, { ...f, adjustments: Math.max(f.adjustments, a.sequence) });
        state.changed.set(`final:${key}`, performance.now());
        invalidate("finals");
      }
      break;
    }
    case "position_removed": {
      state.positions.delete((data as { key: string }).key);
      invalidate("positions");
      break;
    }
    case "pnl_removed": {
      state.pnl.delete((data as { key: string }).key);
      invalidate("pnl");
      break;
    }
    case "bar_removed": {
      // key instrument|window_start: the window's trades were all cancelled
      const key = (data as { key: string }).key;
      const cut = key.lastIndexOf("|");
      const instrument = key.slice(0, cut);
      const time = Math.floor(Date.parse(key.slice(cut + 1)) / 1000);
      const series = state.bars.get(instrument);
      if (series?.delete(time)) {
        if (series.size === 0) state.bars.delete(instrument);
        invalidate("bars");
      }
      break;
    }
    default:
      break;
  }
}

/** Reload every snapshot (after each stream (re)connection, so nothing is missed). */
async function loadSnapshots(): Promise<void> {
  const [positions, pnl, alerts, rejects, bars, finals, status, allocations, acks, confirmations, overdue] = await Promise.all([
    getJson<Page<Position>>("/v1/positions?limit=10000"),
    getJson<Page<AccountPnL>>("/v1/pnl?limit=10000"),
    getJson<Page<RiskAlert>>(`/v1/alerts?limit=${MAX_FEED}`),
    getJson<Page<RejectedTrade>>(`/v1/rejects?limit=${MAX_FEED}`),
    getJson<Page<Bar>>("/v1/bars?limit=10000"),
    getJson<Page<FinalObligation>>("/v1/settlement/final?limit=10000"),
    getJson<Status>("/v1/status"),
    getJson<Page<Allocation>>(`/v1/allocations?limit=${MAX_FEED}`),
    getJson<Page<AllocationAck>>(`/v1/allocations/acks?limit=${MAX_FEED}`),
    getJson<Page<Confirmation>>("/v1/confirmations?limit=10000"),
    getJson<Page<AffirmationException>>("/v1/affirmation-exceptions?open_only=true&limit=10000"),
  ]);
  state.postTrade = {
    allocations: new Map(allocations.items.map((a) => [`${a.block_id}|${a.alloc_id}`, a])),
    acks: acks.items,
    confirmations: new Map(confirmations.items.map((c) => [c.trade_id, c])),
    openExceptions: new Map(overdue.items.map((e) => [e.trade_id, e])),
    cleared: status.counts.cleared_affirmation_exceptions ?? 0,
  };
  state.positions = new Map(positions.items.map((p) => [`${p.account}|${p.instrument}`, p]));
  state.pnl = new Map(pnl.items.map((p) => [p.account, p]));
  state.alerts = alerts.items;
  state.rejects = rejects.items;
  state.reasons = new Map(Object.entries(status.reject_reasons));
  state.bars = new Map();
  for (const bar of bars.items) addBar(bar);
  state.finals = new Map(finals.items.map((f) => [f.key, f]));
  refitBars = true;
  state.status = status;
  showReadiness(status.follower);
  invalidate("pnl", "positions", "alerts", "rejects", "bars", "finals", "allocations", "affirmations");
}

function showReadiness(f: FollowerStatus): void {
  const el = $("readiness");
  if (f.error) {
    el.className = "bad";
    el.textContent = `read model stopped: ${f.error}`;
  } else if (f.ready) {
    el.className = "muted";
    el.textContent = `read model: ${f.records.toLocaleString("en-US")} records · ${f.partitions} partitions · lag ${f.lag_records.toLocaleString("en-US")}`;
  } else {
    el.className = "warn";
    el.textContent = `read model catching up: ${f.behind_start_records.toLocaleString("en-US")} records to go`;
  }
}

function setConnection(s: "live" | "reconnecting"): void {
  const el = $("conn");
  el.className = `pill ${s === "live" ? "pill-live" : "pill-wait"}`;
  el.querySelector(".label")!.textContent = s === "live" ? "live" : "reconnecting";
}

async function pollServices(): Promise<void> {
  try {
    const services = await getJson<ServiceStatus[]>("/v1/services");
    state.services = services;
    throughput ??= services.length ? new ThroughputChart($("svc-chart")) : null;
    throughput?.add(
      Math.floor(Date.now() / 1000),
      services.map((s) => ({ name: s.name, perSecond: s.records_in_per_s })),
    );
    invalidate("services");
  } catch {
    /* the next poll tries again */
  }
}

async function pollStatus(): Promise<void> {
  try {
    const status = await getJson<Status>("/v1/status");
    state.status = status;
    showReadiness(status.follower);
    invalidate("kpis");
  } catch {
    /* the next poll tries again */
  }
}

function tick(): void {
  $("clock").textContent = `${new Date().toISOString().slice(11, 19)} UTC`;
}

function start(): void {
  $<HTMLInputElement>("pos-filter").addEventListener("input", (e) => {
    state.accountFilter = (e.target as HTMLInputElement).value.trim() || null;
    invalidate("positions", "pnl");
  });
  $<HTMLInputElement>("pos-open").addEventListener("change", () => invalidate("positions"));
  $<HTMLSelectElement>("bar-instrument").addEventListener("change", (e) => {
    selectedInstrument = (e.target as HTMLSelectElement).value;
    invalidate("bars");
  });
  follow(
    () => {
      loadSnapshots().catch(() => setConnection("reconnecting"));
    },
    onEvent,
    setConnection,
  );
  tick();
  setInterval(tick, 1000);
  void pollServices();
  setInterval(pollServices, 1000);
  setInterval(pollStatus, 2000);
}

start();
