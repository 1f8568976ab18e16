// One WatchEvents stream per page: every session event the caller may see, resumed by
// cursor after a drop. A stream that stayed open HEALTHY_MS was working: after it drops
// the feed reconnects at once and stays live. One that fails sooner (no streaming on the
// way, server refuses) puts the feed in polling mode: listeners get a refresh tick every
// RETRY_MS while it keeps trying, so the page stays current either way.
import { api, describeError, endless, isCancelled, isUnauthenticated } from "./api";
import { SessionEventType, type SessionEvent } from "./gen/bai/api/manager/v1/session_pb";

const RETRY_MS = 2_000;
const HEALTHY_MS = 3_000;

export type FeedState = { mode: "live" } | { mode: "polling"; why: string };

/** An event, or null for "something may have changed: fetch again". */
export type FeedListener = (event: SessionEvent | null) => void;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
}

export class SessionFeed {
  private readonly listeners = new Set<FeedListener>();
  private abort: AbortController | null = null;
  private cursor = "";
  state: FeedState = { mode: "live" };
  onState: (state: FeedState) => void = () => undefined;

  constructor(private readonly onUnauthenticated: () => void) {}

  /** Returns the unsubscribe function. */
  subscribe(listener: FeedListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    this.stop();
    this.abort = new AbortController();
    this.cursor = "";
    void this.run(this.abort.signal);
  }

  stop(): void {
    this.abort?.abort();
    this.abort = null;
  }

  private emit(event: SessionEvent | null): void {
    for (const listener of [...this.listeners]) listener(event);
  }

  private setState(state: FeedState): void {
    this.state = state;
    this.onState(state);
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const opened = Date.now();
      const healthy = setTimeout(() => this.setState({ mode: "live" }), HEALTHY_MS);
      try {
        const stream = api.sessions.watchEvents({ cursor: this.cursor }, endless(signal));
        for await (const { event } of stream) {
          if (!event) continue;
          this.cursor = event.cursor;
          if (this.state.mode !== "live") this.setState({ mode: "live" });
          if (event.type !== SessionEventType.KEEPALIVE) this.emit(event);
        }
      } catch (err) {
        if (signal.aborted || isCancelled(err)) return;
        if (isUnauthenticated(err)) return this.onUnauthenticated();
        const e = describeError(err);
        if (e.reason === "CURSOR_EXPIRED") this.cursor = "";
        if (Date.now() - opened < HEALTHY_MS) {
          this.setState({ mode: "polling", why: `${e.reason || e.code}: ${e.message}` });
        }
      } finally {
        clearTimeout(healthy);
      }
      // Without a cursor the gap before the next stream is not replayed: fetch again.
      if (this.state.mode === "polling" || !this.cursor) this.emit(null);
      if (Date.now() - opened < HEALTHY_MS) await sleep(RETRY_MS, signal);
    }
  }
}
