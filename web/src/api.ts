// The query API's shapes (see /openapi.json) and the calls the dashboard makes. The
// domain structs' types are generated from the same schemas (./generated/types.ts, written
// by `python -m tradeflux.query.typescript` before every build).

import type {
  AccountPnL,
  AffirmationException,
  AllocatedChild,
  Allocation,
  AllocationAck,
  Bar,
  Confirmation,
  FinalObligation,
  ObligationStatement,
  Position,
  RejectedTrade,
  RiskAlert,
  SecuritiesObligation,
  SettlementObligation,
} from "./generated/types";

export type {
  AccountPnL,
  AffirmationException,
  AllocatedChild,
  Allocation,
  AllocationAck,
  Bar,
  Confirmation,
  FinalObligation,
  ObligationStatement,
  Position,
  RejectedTrade,
  RiskAlert,
  SecuritiesObligation,
  SettlementObligation,
};

export interface Page<T> {
  total: number;
  limit: number;
  offset: number;
  items: T[];
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

export type ConfirmationStatus = Confirmation["status"];

