// How enums, slots and times read on the page.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { h } from "./dom";
import { KernelStatus, LifecycleReason, SessionStatus, SessionType } from "./gen/bai/api/common/v1/session_pb";
import type { ResourceSlots } from "./gen/bai/api/common/v1/types_pb";

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const KiB = 2 ** 10;

/** An enum value as its upper-case name ("RUNNING"); the number when unknown. */
export function enumName(e: Record<number, string>, value: number): string {
  return e[value] ?? String(value);
}

export const sessionStatus = (s: SessionStatus): string => enumName(SessionStatus, s);
export const kernelStatus = (s: KernelStatus): string => enumName(KernelStatus, s);
export const sessionType = (t: SessionType): string => enumName(SessionType, t).toLowerCase();
export const reason = (r: LifecycleReason): string =>
  r === LifecycleReason.UNSPECIFIED ? "" : enumName(LifecycleReason, r).toLowerCase().replace(/_/g, "-");

const TERMINAL = new Set([SessionStatus.TERMINATED, SessionStatus.CANCELLED, SessionStatus.ERROR]);
export const isTerminal = (s: SessionStatus): boolean => TERMINAL.has(s);
export const isLive = (s: SessionStatus): boolean =>
  s === SessionStatus.RUNNING || s === SessionStatus.RUNNING_DEGRADED;

/** A status badge; CSS colours it by the status-<name> class. */
export function statusBadge(name: string): HTMLElement {
  return h("span", { class: `status status-${name.toLowerCase()}` }, name);
}

export function bytes(n: number): string {
  if (n >= GiB) return `${+(n / GiB).toFixed(2)} GiB`;
  if (n >= MiB) return `${+(n / MiB).toFixed(1)} MiB`;
  if (n >= KiB) return `${+(n / KiB).toFixed(1)} KiB`;
  return `${n} B`;
}

/** "cpu 1 · mem 1 GiB · cuda.device 1": slots in a stable order, zeros left out. */
export function slots(s?: ResourceSlots): string {
  const entries = Object.entries(s?.slots ?? {}).filter(([, v]) => Number(v) !== 0);
  const rank = (k: string): number => (k === "cpu" ? 0 : k === "mem" ? 1 : 2);
  entries.sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b));
  return entries.map(([k, v]) => `${k} ${k === "mem" ? bytes(Number(v)) : v}`).join(" · ");
}

/** "2026-01-01 12:00:05" in the browser's time zone; "" when unset. */
export function when(t?: Timestamp): string {
  if (!t) return "";
  const d = timestampDate(t);
  const pad = (n: number): string => String(n).padStart(2, "0");
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}
