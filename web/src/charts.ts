// Charts on lightweight-charts (TradingView's open-source canvas charting library).
import {
  CandlestickSeries,
  ColorType,
  CrosshairMode,
  HistogramSeries,
  LineSeries,
  createChart,
  type IChartApi,
  type ISeriesApi,
  type UTCTimestamp,
} from "lightweight-charts";
import type { Bar } from "./api";
import { num } from "./format";

export const UP = "#26d07c";
export const DOWN = "#ff5c6c";
const GRID = "rgba(140, 160, 190, 0.08)";
const TEXT = "#8b98ad";
const VISIBLE_BARS = 90;
const MAX_FIT_POINTS = 300; // the throughput chart fills its width for the first 5 minutes

function baseOptions(el: HTMLElement) {
  return {
    autoSize: true,
    layout: {
      background: { type: ColorType.Solid, color: "transparent" },
      textColor: TEXT,
      fontFamily: "'JetBrains Mono', 'SFMono-Regular', Menlo, Consolas, monospace",
      fontSize: 11,
      // The logo is a <style> element the library injects, which the dashboard's
      // Content-Security-Policy (no inline style) refuses; the attribution is a link in
      // the page's header instead (index.html), as the library's licence allows.
      attributionLogo: false,
    },
    grid: { vertLines: { color: GRID }, horzLines: { color: GRID } },
    rightPriceScale: { borderColor: "rgba(140,160,190,0.18)" },
    timeScale: {
      borderColor: "rgba(140,160,190,0.18)",
      timeVisible: true,
      secondsVisible: true,
    },
    crosshair: { mode: CrosshairMode.Normal },
    width: el.clientWidth,
    height: el.clientHeight,
  };
}

/** One bar as the chart needs it, read from whatever fields the analytics service wrote. */
export interface Candle {
  time: UTCTimestamp;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  vwap: string | null;
  count: number | null;
  raw: Bar;
}

/** The instrument a bar belongs to. */
export function barInstrument(bar: Bar): string {
  return String(bar.instrument ?? "");
}

/** Read a bar (Bar, generated from domain/schemas.py): window start, OHLC, volume, VWAP. */
export function toCandle(bar: Bar): Candle | null {
  const ms = Date.parse(String(bar.window_start));
  const open = Number(bar.open);
  const high = Number(bar.high);
  const low = Number(bar.low);
  const close = Number(bar.close);
  if (!Number.isFinite(ms) || ![open, high, low, close].every(Number.isFinite)) return null;
  return {
    time: Math.floor(ms / 1000) as UTCTimestamp,
    open,
    high,
    low,
    close,
    volume: Number(bar.volume ?? 0) || 0,
    vwap: bar.vwap === undefined || bar.vwap === null ? null : String(bar.vwap),
    count: bar.count === undefined || bar.count === null ? null : Number(bar.count),
    raw: bar,
  };
}

/** A candlestick chart with volume underneath, for one instrument at a time. */
export class BarChart {
  private chart: IChartApi;
  private candles: ISeriesApi<"Candlestick">;
  private volume: ISeriesApi<"Histogram">;
  private lastTime = 0;
  private shownKey = "";

  constructor(el: HTMLElement) {
    this.chart = createChart(el, baseOptions(el));
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: UP,
      downColor: DOWN,
      borderUpColor: UP,
      borderDownColor: DOWN,
      wickUpColor: UP,
      wickDownColor: DOWN,
      priceLineColor: "rgba(200,210,225,0.5)",
    });
    this.volume = this.chart.addSeries(HistogramSeries, {
      priceScaleId: "",
      priceFormat: { type: "volume" },
      lastValueVisible: false,
      priceLineVisible: false,
    });
    this.volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.24 } });
  }

  /** Show these candles (ascending, one per time); `refit` scrolls to the latest ones. */
  show(key: string, candles: Candle[], refit = false): void {
    this.candles.setData(candles.map(({ time, open, high, low, close }) => ({ time, open, high, low, close })));
    this.volume.setData(candles.map(volumeBar));
    this.lastTime = candles.length ? candles[candles.length - 1].time : 0;
    if (refit || key !== this.shownKey) {
      const n = candles.length;
      if (n > VISIBLE_BARS) this.chart.timeScale().setVisibleLogicalRange({ from: n - VISIBLE_BARS, to: n + 2 });
      else this.chart.timeScale().fitContent();
      this.shownKey = key;
    }
  }

  /** Add or revise one candle; older than the last shown means a full redraw by the caller. */
  update(candle: Candle): boolean {
    if (candle.time < this.lastTime) return false;
    const { time, open, high, low, close } = candle;
    this.candles.update({ time, open, high, low, close });
    this.volume.update(volumeBar(candle));
    this.lastTime = candle.time;
    return true;
  }
}

function volumeBar(c: Candle) {
  return {
    time: c.time,
    value: c.volume,
    color: c.close >= c.open ? "rgba(38,208,124,0.35)" : "rgba(255,92,108,0.35)",
  };
}

/** One line per service: records in per second over the last minutes. */
export class ThroughputChart {
  private chart: IChartApi;
  private lines = new Map<string, ISeriesApi<"Line">>();
  private points = 0;
  private static readonly COLORS = ["#4fa3ff", "#26d07c", "#f5b942", "#c17bff", "#ff7a59", "#3fd0d4", "#e86bb0"];

  constructor(el: HTMLElement) {
    this.chart = createChart(el, {
      ...baseOptions(el),
      layout: { ...baseOptions(el).layout, attributionLogo: false },
      rightPriceScale: { borderColor: "rgba(140,160,190,0.18)", scaleMargins: { top: 0.1, bottom: 0.05 } },
      handleScroll: false,
      handleScale: false,
    });
  }

  /** The colour of a service's line (also used in the table). */
  color(name: string): string {
    const names = [...this.lines.keys()];
    const index = names.includes(name) ? names.indexOf(name) : names.length;
    return ThroughputChart.COLORS[index % ThroughputChart.COLORS.length];
  }

  add(time: number, values: Array<{ name: string; perSecond: number }>): void {
    for (const { name, perSecond } of values) {
      let line = this.lines.get(name);
      if (!line) {
        line = this.chart.addSeries(LineSeries, {
          color: this.color(name),
          lineWidth: 2,
          priceLineVisible: false,
          lastValueVisible: false,
          priceFormat: { type: "custom", formatter: (v: number) => num(v, 0) },
        });
        this.lines.set(name, line);
      }
      line.update({ time: time as UTCTimestamp, value: perSecond });
    }
    if (++this.points <= MAX_FIT_POINTS) this.chart.timeScale().fitContent();
  }
}
