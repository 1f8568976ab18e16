// Server streams of one session: live stats (WatchStats) and the main kernel's log
// (StreamLogs). Each panel runs at most one stream and stops when told or when the
// server ends it (the session ended).
import { api, describeError, endless, isCancelled } from "./api";
import { h } from "./dom";
import { bytes, when } from "./format";
import { OutputStream } from "./gen/bai/api/common/v1/execution_pb";
import type { KernelStats } from "./gen/bai/api/common/v1/stats_pb";
import { errorBox } from "./table";

const MAX_LOG_LINES = 2000;

abstract class StreamPanel {
  readonly root: HTMLElement;
  protected readonly body: HTMLElement;
  protected readonly state = h("span", { class: "muted stream-state" });
  private abort: AbortController | null = null;

  constructor(id: string, title: string, body: HTMLElement) {
    this.body = body;
    this.root = h("section", { class: "panel", id }, h("h3", {}, title, " ", this.state), body);
  }

  stop(): void {
    this.abort?.abort();
    this.abort = null;
  }

  protected async run(consume: (signal: AbortSignal) => Promise<void>): Promise<void> {
    this.stop();
    const ctl = new AbortController();
    this.abort = ctl;
    this.state.textContent = "streaming";
    try {
      await consume(ctl.signal);
      this.state.textContent = "ended";
    } catch (err) {
      if (ctl.signal.aborted || isCancelled(err)) return;
      this.state.textContent = "failed";
      this.body.append(errorBox(describeError(err)));
    } finally {
      if (this.abort === ctl) this.abort = null;
    }
  }
}

export class StatsPanel extends StreamPanel {
  constructor() {
    const waiting = h("p", { class: "muted" }, "Starts when the session runs.");
    super("session-stats", "Live stats", h("div", {}, waiting));
  }

  /** Samples every second; `names` maps kernel ids to "main1"-style names. */
  start(sessionId: string, names: Map<string, string>): void {
    void this.run(async (signal) => {
      const stream = api.sessions.watchStats({ sessionId, interval: { seconds: BigInt(1) } }, endless(signal));
      for await (const sample of stream) {
        this.body.replaceChildren(
          h("p", { class: "muted" }, `sample at ${when(sample.time)}`),
          this.table(sample.kernels, names),
        );
      }
    });
  }

  private table(kernels: KernelStats[], names: Map<string, string>): HTMLElement {
    const memory = (k: KernelStats): string =>
      bytes(Number(k.memUsedBytes)) + (k.memLimitBytes ? ` / ${bytes(Number(k.memLimitBytes))}` : "");
    return h(
      "table",
      {},
      h("thead", {}, h("tr", {}, h("th", {}, "Kernel"), h("th", {}, "CPU %"), h("th", {}, "Memory"))),
      h(
        "tbody",
        {},
        ...kernels.map((k) =>
          h(
            "tr",
            {},
            h("td", {}, names.get(k.kernelId) ?? k.kernelId),
            h("td", { class: "cpu" }, k.cpuUtilPercent.toFixed(1)),
            h("td", { class: "mem" }, memory(k)),
          ),
        ),
      ),
    );
  }
}

export class LogsPanel extends StreamPanel {
  private readonly pre = h("pre", { class: "log" });
  private readonly decoder = new TextDecoder();

  constructor() {
    super("session-logs", "Logs (main kernel)", h("div", {}));
    this.body.append(this.pre);
  }

  /** The last 200 entries, then (with follow) new ones until the kernel ends. */
  start(sessionId: string, follow: boolean): void {
    this.pre.replaceChildren();
    void this.run(async (signal) => {
      const stream = api.sessions.streamLogs({ sessionId, tail: 200, follow }, endless(signal));
      for await (const { entry } of stream) {
        if (!entry) continue;
        const cls = entry.stream === OutputStream.STDERR ? "stderr" : "stdout";
        const text = this.decoder.decode(entry.data);
        this.pre.append(h("span", { class: cls }, text.endsWith("\n") ? text : `${text}\n`));
        while (this.pre.childNodes.length > MAX_LOG_LINES) this.pre.firstChild?.remove();
        this.pre.scrollTop = this.pre.scrollHeight;
      }
    });
  }
}
