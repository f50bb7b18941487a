// The query API's shapes (see /openapi.json) and the calls the dashboard makes.

export interface Page<T> {
  total: number;
  limit: number;
  offset: number;
  items: T[];
}

export interface Position {
  account: string;
  instrument: string;
  currency: string;
  quantity: string;
  avg_cost: string;
  realized_pnl: string;
  multiplier: string;
  trade_count: number;
  last_trade_id: string;
  as_of: string | null;
}

export interface AccountPnL {
  account: string;
  base_currency: string;
  realized: string;
  unrealized: string;
  total: string;
  positions: number;
  missing_marks: string[];
}

export interface RejectedTrade {
  trade_id: string | null;
  reason: string;
  stage: string;
  error: string;
  detail: string;
  source_topic: string;
  source_partition: number | null;
  source_offset: number | null;
  rejected_at: string | null;
  partition: number;
  offset: number;
  value: string;
}

export interface SecuritiesObligation {
  instrument: string;
  isin: string;
  quantity: string;
  trade_count: number;
}

export interface SettlementObligation {
  counterparty: string;
  counterparty_lei: string;
  currency: string;
  settlement_date: string;
  net_cash: string;
  cash_paid: string;
  cash_received: string;
  trade_count: number;
  securities: SecuritiesObligation[];
}

/** A FINAL or ADJUSTMENT statement of an obligation (settlement.statements). */
export interface ObligationStatement {
  kind: "FINAL" | "ADJUSTMENT";
  sequence: number;
  counterparty: string;
  currency: string;
  settlement_date: string;
  cutoff_at: string;
  recorded_at: string;
  obligation: SettlementObligation | null;
  previous: SettlementObligation | null;
  net_cash_change: string;
  trade_id: string;
  version: number;
  event_type: string;
}

/** An obligation as made FINAL at its cut-off (/v1/settlement/final). */
export interface FinalObligation {
  key: string;
  final: ObligationStatement;
  adjustments: number;
}

/** Alerts, bars and obligations are whatever JSON object their service wrote. */
export type JsonObject = Record<string, unknown>;

export interface FollowerStatus {
  ready: boolean;
  records: number;
  behind_start_records: number;
  lag_records: number;
  partitions: number;
  topics: string[];
  missing_topics: string[];
  error: string | null;
}

export interface Status {
  follower: FollowerStatus;
  counts: Record<string, number>;
  reject_reasons: Record<string, number>;
  stream_subscribers: number;
  server_time: string;
}

export interface ServiceStatus {
  name: string;
  url: string;
  up: boolean;
  error: string | null;
  instances: number;
  records_in_total: number;
  records_in_per_s: number;
  records_out_total: number;
  records_out_per_s: number;
  dead_letters_total: number;
  consumer_lag_records: number;
  assigned_partitions: number;
  transaction_aborts_total: number;
  scraped_at: string | null;
}

export async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (response.status === 401) {
    // The session cookie of the login link ended (or the query service restarted).
    const label = document.querySelector("#conn .label");
    if (label) label.textContent = "logged out: open a new login link";
  }
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return (await response.json()) as T;
}

export type Handler = (kind: string, data: unknown) => void;

export const EVENT_KINDS = [
  "position",
  "pnl",
  "alert",
  "bar",
  "reject",
  "obligation",
  "final",
  "adjustment",
  "allocation",
  "allocation_ack",
  "confirmation",
  "affirmation_exception",
] as const;

/**
 * Follows /v1/stream. `onOpen` runs after every (re)connection's hello, so the caller
 * reloads its snapshots then; events are handed to `onEvent` as they come.
 */
export function follow(
  onOpen: (status: FollowerStatus) => void,
  onEvent: Handler,
  onState: (state: "live" | "reconnecting") => void,
): EventSource {
  const source = new EventSource(`/v1/stream?events=${EVENT_KINDS.join(",")}`);
  source.addEventListener("hello", (e) => {
    onState("live");
    onOpen(JSON.parse((e as MessageEvent<string>).data) as FollowerStatus);
  });
  for (const kind of EVENT_KINDS) {
    source.addEventListener(kind, (e) => onEvent(kind, JSON.parse((e as MessageEvent<string>).data)));
    source.addEventListener(`${kind}_removed`, (e) =>
      onEvent(`${kind}_removed`, JSON.parse((e as MessageEvent<string>).data)),
    );
  }
  source.onerror = () => onState("reconnecting");
  return source;
}

// -- post-trade: block allocation, confirmation and affirmation (their domain structs) ----

export interface AllocatedChild {
  account: string;
  requested: string;
  quantity: string;
  trade_id: string;
  version: number;
  cancelled: boolean;
}

export interface Allocation {
  block_id: string;
  order_id: string;
  alloc_id: string;
  last_alloc_id: string;
  status: "ACCEPTED" | "CANCELLED";
  trade_date: string;
  account: string;
  instrument: string;
  side: "BUY" | "SELL";
  currency: string;
  quantity: string;
  avg_px: string;
  executions: string[];
  children: AllocatedChild[];
  offset_trade_id: string;
  block_changed: boolean;
  replaces: number;
  source: string;
  session: string;
  text: string;
  updated_at: string;
}

export interface AllocationAck {
  alloc_id: string;
  trans_type: "NEW" | "REPLACE" | "CANCEL";
  ref_alloc_id: string;
  order_id: string;
  trade_date: string;
  block_id: string;
  status: "PENDING" | "ACCEPTED" | "REJECTED";
  reason: string;
  detail: string;
  allocation_id: string;
  children: AllocatedChild[];
  source: string;
  session: string;
  at: string;
}

export type ConfirmationStatus = "PENDING" | "CONFIRMED" | "AFFIRMED" | "REJECTED" | "CANCELLED";

export interface Confirmation {
  confirm_id: string;
  trade_id: string;
  version: number;
  status: ConfirmationStatus;
  issue: string;
  block_id: string;
  alloc_id: string;
  account: string;
  instrument: string;
  side: "BUY" | "SELL";
  quantity: string;
  avg_px: string;
  currency: string;
  mic: string;
  trade_date: string;
  deadline: string;
  affirmed_at: string | null;
  reject_reason: string;
  updated_at: string;
}

export interface AffirmationException {
  trade_id: string;
  confirm_id: string;
  kind: "UNAFFIRMED" | "CLEARED";
  status: ConfirmationStatus;
  resolution: string;
  deadline: string;
  at: string;
  late_ms: number;
  account: string;
  block_id: string;
  alloc_id: string;
  instrument: string;
  mic: string;
  trade_date: string;
}
