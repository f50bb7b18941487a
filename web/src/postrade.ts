// The post-trade panels: block allocations and their status, confirmations and the
// affirmation exceptions still open.
import type { AffirmationException, Allocation, AllocationAck, Confirmation, ConfirmationStatus } from "./api";
import { clock, count, num, stamp } from "./format";

const MAX_ROWS = 200;
const STATUSES: ConfirmationStatus[] = ["PENDING", "CONFIRMED", "AFFIRMED", "REJECTED", "CANCELLED"];

/** What the post-trade panels show, keyed as the API keys it. */
export interface PostTradeState {
  allocations: Map<string, Allocation>; // block_id|alloc_id
  acks: AllocationAck[]; // newest first
  confirmations: Map<string, Confirmation>; // child trade id
  openExceptions: Map<string, AffirmationException>; // child trade id, raised and not cleared
  cleared: number;
}

export function emptyPostTrade(): PostTradeState {
  return { allocations: new Map(), acks: [], confirmations: new Map(), openExceptions: new Map(), cleared: 0 };
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = "", text = ""): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/** Apply one live event of the post-trade kinds; return whether it was one. */
export function applyPostTrade(s: PostTradeState, kind: string, data: unknown): boolean {
  switch (kind) {
    case "allocation": {
      const a = data as Allocation;
      s.allocations.set(`${a.block_id}|${a.alloc_id}`, a);
      return true;
    }
    case "allocation_removed":
      s.allocations.delete((data as { key: string }).key);
      return true;
    case "allocation_ack":
      s.acks.unshift(data as AllocationAck);
      s.acks.length = Math.min(s.acks.length, MAX_ROWS);
      return true;
    case "confirmation": {
      const c = data as Confirmation;
      s.confirmations.set(c.trade_id, c);
      return true;
    }
    case "confirmation_removed":
      s.confirmations.delete((data as { key: string }).key);
      return true;
    case "affirmation_exception": {
      const e = data as AffirmationException;
      if (e.kind === "UNAFFIRMED") s.openExceptions.set(e.trade_id, e);
      else {
        s.openExceptions.delete(e.trade_id);
        s.cleared += 1;
      }
      return true;
    }
    default:
      return false;
  }
}

/** One row per allocation (latest first), then the instructions rejected or still waiting. */
export function renderAllocations(s: PostTradeState, table: HTMLElement, hint: HTMLElement): void {
  const body = table.querySelector("tbody")!;
  const rows: HTMLTableRowElement[] = [];
  const allocations = [...s.allocations.values()].sort((a, b) => b.updated_at.localeCompare(a.updated_at));
  const waiting = new Map<string, AllocationAck>();
  for (const ack of s.acks) if (!waiting.has(ack.alloc_id)) waiting.set(ack.alloc_id, ack);
  for (const ack of waiting.values()) {
    if (ack.status === "ACCEPTED") continue;
    const row = el("tr");
    row.append(
      el("td", "l dim mono", clock(ack.at)),
      el("td", "l mono", ack.block_id),
      el("td", "l mono", ack.alloc_id),
      el("td", "l dim", "—"),
      el("td", "num dim", ""),
      el("td", "num dim", ""),
      el("td", "l detail", ack.detail),
      el("td", "l"),
    );
    row.cells[7].append(el("span", `badge ${ack.status === "REJECTED" ? "breach" : "info"}`, ack.reason || ack.status));
    row.title = `${ack.trans_type} ${ack.alloc_id} (${ack.source}${ack.session ? " " + ack.session : ""})`;
    rows.push(row);
  }
  for (const a of allocations) {
    const row = el("tr");
    const live = a.children.filter((c) => !c.cancelled && Number(c.quantity) > 0);
    const split = live.map((c) => `${c.account} ${num(c.quantity)}`).join(" · ");
    row.append(
      el("td", "l dim mono", clock(a.updated_at)),
      el("td", "l mono", a.block_id),
      el("td", "l mono", a.last_alloc_id === a.alloc_id ? a.alloc_id : `${a.alloc_id} → ${a.last_alloc_id}`),
      el("td", "l instr", `${a.side === "BUY" ? "B" : "S"} ${a.instrument}`),
      el("td", "num", num(a.quantity)),
      el("td", "num", num(a.avg_px, 6)),
      el("td", "l detail", a.status === "CANCELLED" ? "cancelled" : split),
      el("td", "l"),
    );
    const badge = a.status === "CANCELLED" ? "down" : a.block_changed ? "reject" : "up";
    row.cells[7].append(el("span", `badge ${badge}`, a.block_changed ? "BLOCK CHANGED" : a.status));
    row.title = `${a.account} → ${a.children.length} accounts · executions ${a.executions.join(", ")} · offset ${a.offset_trade_id} · ${stamp(a.updated_at)}`;
    rows.push(row);
  }
  body.replaceChildren(...rows.slice(0, MAX_ROWS));
  const rejected = [...waiting.values()].filter((a) => a.status === "REJECTED").length;
  hint.textContent = `${count(allocations.length)} allocations · ${rejected} rejected`;
}

/** Confirmation statuses as chips, then the children still unaffirmed past their deadline. */
export function renderAffirmations(
  s: PostTradeState,
  chips: HTMLElement,
  table: HTMLElement,
  hint: HTMLElement,
): void {
  const byStatus = new Map<string, number>();
  for (const c of s.confirmations.values()) byStatus.set(c.status, (byStatus.get(c.status) ?? 0) + 1);
  chips.replaceChildren(
    ...STATUSES.map((st) => {
      const chip = el("div", `status ${st.toLowerCase()}`);
      chip.append(el("span", "name", st), el("span", "n mono", count(byStatus.get(st) ?? 0)));
      return chip;
    }),
  );
  const open = [...s.openExceptions.values()].sort((a, b) => a.deadline.localeCompare(b.deadline) || a.trade_id.localeCompare(b.trade_id));
  const body = table.querySelector("tbody")!;
  body.replaceChildren(
    ...open.slice(0, MAX_ROWS).map((e) => {
      const row = el("tr");
      const status = s.confirmations.get(e.trade_id)?.status ?? e.status;
      row.append(
        el("td", "l dim mono", clock(e.deadline)),
        el("td", "l mono trade", e.trade_id),
        el("td", "l acct", e.account),
        el("td", "l instr", e.instrument),
        el("td", "l"),
      );
      row.cells[4].append(el("span", `badge ${status === "REJECTED" ? "breach" : "reject"}`, status));
      row.title = `due ${stamp(e.deadline)} (${e.mic}, trade date ${e.trade_date}) · raised ${stamp(e.at)}`;
      return row;
    }),
  );
  hint.textContent = open.length
    ? `${count(open.length)} unaffirmed past deadline · ${count(s.cleared)} cleared late`
    : `none overdue · ${count(s.confirmations.size)} confirmations`;
  hint.className = open.length ? "hint neg" : "hint";
}
