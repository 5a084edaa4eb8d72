// Scales and tick labels of the time-series charts (charts.js).
// y: ticks at round steps (1, 2, 2.5, 5 x 10^k) in one unit chosen by the data, the top of the
// scale on a tick; x: labels formatted by the visible span (seconds, clock time, or "Mon 12")
// with tick spacing measured from that label text, so labels never overlap.

export const DAY = 86400;

const STEPS = [1, 2, 2.5, 5];
const INTEGER_STEPS = [1, 2, 5];
// Intervals between y ticks: a 190 px chart has room for about four.
const Y_INTERVALS = 4;
// Headroom above the data's maximum, so the highest point does not touch the top.
const HEADROOM = 1.05;
const BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
// A core's worth of CPU is 100 %: an idle agent still gets an axis up to 10 %.
const MIN_CORE_PERCENT = 10;

/** The smallest round step (1, 2, 2.5 or 5 x 10^k; no 2.5 when `integer`) that is >= raw. */
export function niceStep(raw, integer = false) {
  if (!(raw > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const steps = integer && magnitude < 10 ? INTEGER_STEPS : STEPS;
  for (const s of steps) if (s * magnitude >= raw * (1 - 1e-9)) return integer ? Math.max(1, s * magnitude) : s * magnitude;
  return 10 * magnitude;
}

function decimals(step) {
  const text = String(Number(step.toPrecision(6)));
  const dot = text.indexOf(".");
  return dot < 0 ? 0 : text.length - dot - 1;
}

/**
 * The y ticks for `kind` and the data's maximum: {max (scale top), step, divisor, unit, digits}.
 * kind: "percent" (0..100 % of a whole), "cores" (% of one core, may exceed 100),
 * "bytes" or "rate" (binary units; rate adds "/s").
 */
export function yTicks(kind, dataMax) {
  const max = Number.isFinite(dataMax) && dataMax > 0 ? dataMax : 0;
  if (kind === "percent") {
    // 102, not 100: a line at 100 % would lie on the plot's edge, half clipped.
    return { max: 102, top: 100, step: 25, divisor: 1, unit: "%", digits: 0 };
  }
  if (kind === "cores") {
    const wanted = Math.max(MIN_CORE_PERCENT, max * HEADROOM);
    const step = niceStep(wanted / Y_INTERVALS);
    const top = Math.ceil(wanted / step - 1e-9) * step;
    return { max: top, top, step, divisor: 1, unit: "%", digits: decimals(step) };
  }
  let power = 0;
  while (power < BINARY.length - 1 && max >= 1024 ** (power + 1)) power += 1;
  const divisor = 1024 ** power;
  const wanted = Math.max(power === 0 ? 10 : 1, (max * HEADROOM) / divisor);
  const step = niceStep(wanted / Y_INTERVALS, power === 0);
  const top = Math.ceil(wanted / step - 1e-9) * step;
  const unit = `${BINARY[power]}${kind === "rate" ? "/s" : ""}`;
  return { max: top * divisor, top: top * divisor, step: step * divisor, divisor, unit, digits: decimals(step) };
}

/** The tick values 0, step, ... up to the top tick. */
export function ySplits(ticks) {
  const out = [];
  const count = Math.round(ticks.top / ticks.step);
  for (let i = 0; i <= count; i++) out.push(i * ticks.step);
  return out;
}

/** A tick label: the value in the ticks' unit, at most the step's decimals ("20 KiB/s", "2.5 %"). */
export function yLabel(ticks, value) {
  const number = String(Number((value / ticks.divisor).toFixed(ticks.digits)));
  return ticks.unit === "%" ? `${number} %` : `${number} ${ticks.unit}`;
}

// Whole seconds and up: samples are at least a second apart.
const CLOCK_INCREMENTS = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, DAY];
const DAY_INCREMENTS = [DAY, 2 * DAY, 3 * DAY, 7 * DAY, 14 * DAY];
const SECONDS_SPAN = 300;
const DAYS_SPAN = 2 * DAY;
// Smallest gap between two x labels, in CSS pixels.
export const LABEL_GAP = 16;

function pad(n) {
  return String(n).padStart(2, "0");
}

/** How x labels read over a span of `span` seconds: "seconds", "clock" or "days". */
export function timeStyle(span) {
  if (span < SECONDS_SPAN) return "seconds";
  return span > DAYS_SPAN ? "days" : "clock";
}

export function timeIncrements(span) {
  return timeStyle(span) === "days" ? DAY_INCREMENTS : CLOCK_INCREMENTS;
}

function dayLabel(d) {
  return `${d.toLocaleDateString(undefined, { weekday: "short" })} ${d.getDate()}`;
}

/** The label of the tick at `t` (Unix seconds): midnights of a clock axis name the day. */
export function timeLabel(t, style, increment) {
  const d = new Date(t * 1000);
  if (style === "days") return dayLabel(d);
  if (style === "seconds") return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (increment >= 3600 && d.getHours() === 0 && d.getMinutes() === 0) return dayLabel(d);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Labels as wide as any the style produces, to measure the spacing of the ticks with. */
export function widestTimeLabels(style) {
  // Dates with two-digit days, over a week so every weekday name is measured.
  const days = [];
  for (let i = 0; i < 7; i++) days.push(dayLabel(new Date(2024, 0, 22 + i)));
  if (style === "days") return days;
  if (style === "seconds") return ["00:00:00", "22:58:58"];
  return ["00:00", "22:58", ...days];
}
