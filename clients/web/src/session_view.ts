// One session: its details, scheduling diagnostics while PENDING, status history,
// kernels, its apps, live stats, logs, how to run code, committing it to an image while
// it runs, and a destroy button. GetSession is read again on each of its events (and
// every 2 s while PENDING: diagnostics change without events).
import { api, describeError, endless, isCancelled, isUnauthenticated } from "./api";
import { AppsPanel } from "./apps_panel";
import { CommitPanel } from "./commit_panel";
import { h } from "./dom";
import type { SessionFeed } from "./feed";
import {
  enumName,
  isLive,
  isTerminal,
  kernelStatus,
  reason,
  sessionStatus,
  sessionType,
  slots,
  statusBadge,
  when,
} from "./format";
import { SessionStatus } from "./gen/bai/api/common/v1/session_pb";
import {
  SchedulingCheck,
  type Kernel,
  type SchedulingDiagnostic,
  type Session,
} from "./gen/bai/api/manager/v1/session_pb";
import { transitions } from "./launch";
import { LogsPanel, StatsPanel } from "./live_panels";
import { errorBox } from "./table";

const PENDING_POLL_MS = 2_000;

const kernelName = (k: Kernel): string => `${k.clusterRole}${k.clusterIdx}`;

/** `bai session exec NAME 'CODE'`, CODE quoted for a POSIX shell. */
export function execCommand(name: string, code: string): string {
  return `bai session exec ${name} '${code.replace(/'/g, `'\\''`)}'`;
}

function table(head: string[], rows: (string | Node)[][]): HTMLElement {
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, ...head.map((t) => h("th", {}, t)))),
    h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c))))),
  );
}

function diagnostic(d: SchedulingDiagnostic): HTMLElement {
  const short = d.shortfalls.map((s) => `${s.slot}: asked ${s.requested}, free ${s.available}`);
  return h(
    "li",
    {},
    h("strong", {}, enumName(SchedulingCheck, d.check).toLowerCase().replace(/_/g, " ")),
    `: ${d.message}`,
    d.agentId ? h("code", {}, ` ${d.agentId}`) : null,
    short.length ? h("span", { class: "muted" }, ` (${short.join("; ")})`) : null,
  );
}

/** "Commit to image" (CommitSession), shown while the session runs; follows the task
 * (WatchTask) to the image's name or the failure. */
export class SessionView {
  readonly root: HTMLElement;
  private id = "";
  private session: Session | null = null;
  private pendingTimer = 0;
  // Each stream starts once per opening, so refreshes do not restart them.
  private statsStarted = false;
  private logsStarted: "" | "follow" | "once" = "";
  private readonly head = h("section", { class: "panel", id: "session-head" });
  private readonly diagnostics = h("section", { class: "panel", id: "session-diagnostics", hidden: "" });
  private readonly history = h("section", { class: "panel", id: "session-history" });
  private readonly kernels = h("section", { class: "panel", id: "session-kernels" });
  private readonly code = h("textarea", { id: "session-code-input", rows: "3", placeholder: "print(6 * 7)" });
  private readonly cli = h("pre", { id: "session-code-cli", class: "cli" });
  private readonly apps: AppsPanel;
  private readonly commit: CommitPanel;
  private readonly stats = new StatsPanel();
  private readonly logs = new LogsPanel();
  private readonly destroyBtn = h("button", { type: "button", id: "session-destroy", class: "danger" }, "Destroy");
  private readonly error = h("div", { id: "session-error" });

  constructor(
    feed: SessionFeed,
    private readonly onExpired: () => void,
  ) {
    feed.subscribe((e) => {
      if (this.id && (e === null || e.sessionId === this.id)) void this.reload();
    });
    this.apps = new AppsPanel(onExpired);
    this.commit = new CommitPanel(onExpired);
    this.destroyBtn.addEventListener("click", () => void this.destroy());
    this.code.addEventListener("input", () => this.showCli());
    const note = h(
      "p",
      { id: "session-code-note", class: "note" },
      "Running code needs SessionService.Execute, a bidirectional stream (code, then stdin and ",
      "interrupts while it runs). Browsers cannot stream a request body through fetch, so ",
      "grpc-web (connect-web) offers only unary and server-streaming calls and this page cannot ",
      "run code. Run it from a terminal with the command below; a batch session runs its startup ",
      "command by itself and its output appears under Logs.",
    );
    this.root = h(
      "div",
      { id: "session-view" },
      h("p", {}, h("a", { href: "#/sessions" }, "‹ All sessions")),
      this.error,
      this.head,
      this.diagnostics,
      this.history,
      this.kernels,
      this.apps.root,
      this.commit.root,
      this.stats.root,
      this.logs.root,
      h("section", { class: "panel", id: "session-code" }, h("h3", {}, "Run code"), note, this.code, this.cli),
    );
  }

  open(id: string): void {
    this.close();
    this.id = id;
    this.session = null;
    this.statsStarted = false;
    this.logsStarted = "";
    for (const p of [this.head, this.history, this.kernels]) {
      p.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    }
    this.error.replaceChildren();
    this.code.value = "";
    void this.reload();
  }

  /** Stop streams and timers (leaving the view). */
  close(): void {
    this.id = "";
    clearTimeout(this.pendingTimer);
    this.apps.reset();
    this.commit.reset();
    this.stats.stop();
    this.logs.stop();
  }

  private async reload(): Promise<void> {
    const id = this.id;
    clearTimeout(this.pendingTimer);
    try {
      const { session } = await api.sessions.getSession({ sessionId: id });
      if (!session || id !== this.id) return;
      this.session = session;
      this.render(session);
      this.error.replaceChildren();
      if (session.status === SessionStatus.PENDING) {
        this.pendingTimer = window.setTimeout(() => void this.reload(), PENDING_POLL_MS);
      }
    } catch (err) {
      if (isUnauthenticated(err)) return this.onExpired();
      if (id === this.id) this.error.replaceChildren(errorBox(describeError(err)));
    }
  }

  private render(s: Session): void {
    const status = sessionStatus(s.status);
    this.destroyBtn.disabled = isTerminal(s.status);
    this.destroyBtn.textContent = s.status === SessionStatus.TERMINATING ? "Force destroy" : "Destroy";
    const facts: [string, string | Node][] = [
      ["Type", sessionType(s.type)],
      ["Image", h("code", {}, `${s.image} (${s.architecture})`)],
      ["Resource group", s.scalingGroup],
      ["Requested", slots(s.requestedSlots)],
      ["Occupied", slots(s.occupiedSlots) || "—"],
      ["Agents", s.agentIds.join(", ") || "—"],
      ["Created", when(s.createdAt)],
      ["Started", when(s.startedAt) || "—"],
      ["Ended", when(s.terminatedAt) || "—"],
    ];
    if (s.startupCommand) facts.push(["Startup command", h("code", {}, s.startupCommand)]);
    const why = [reason(s.statusReason), s.statusMessage].filter(Boolean).join(": ");
    if (why) facts.push(["Why", why]);
    if (s.exitCode !== undefined) facts.push(["Exit code", String(s.exitCode)]);
    this.head.dataset.status = status;
    this.head.replaceChildren(
      h("h2", {}, s.name, " ", h("span", { id: "session-status" }, statusBadge(status)), " ", this.destroyBtn),
      h("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    );

    const pending = s.status === SessionStatus.PENDING;
    this.diagnostics.hidden = !pending;
    this.diagnostics.replaceChildren(
      h("h3", {}, "Why is it pending?"),
      h("p", { class: "muted" }, `scheduling attempts: ${s.schedulingAttempts}`),
      s.schedulingDiagnostics.length
        ? h("ul", {}, ...s.schedulingDiagnostics.map(diagnostic))
        : h("p", { class: "muted" }, "Not checked yet: waiting for the next scheduling round."),
    );

    this.history.replaceChildren(
      h("h3", {}, "Status history ", transitions(s)),
      table(
        ["Status", "Time", "Reason", "Message"],
        s.statusHistory.map((t) => [
          statusBadge(sessionStatus(t.status)),
          when(t.time),
          reason(t.reason),
          t.message,
        ]),
      ),
    );

    this.kernels.replaceChildren(
      h("h3", {}, "Kernels"),
      table(
        ["Kernel", "Status", "Agent", "Container", "Requested", "Exit", "History"],
        s.kernels.map((k) => [
          kernelName(k),
          statusBadge(kernelStatus(k.status)),
          k.agentId,
          h("code", {}, k.containerId.slice(0, 12)),
          slots(k.requestedSlots),
          k.exitCode === undefined ? "" : String(k.exitCode),
          k.statusHistory.map((t) => kernelStatus(t.status)).join(" → "),
        ]),
      ),
    );

    this.apps.follow(s.id, isLive(s.status));
    this.commit.follow(s.id, s.status === SessionStatus.RUNNING);
    const names = new Map(s.kernels.map((k) => [k.id, kernelName(k)]));
    const hasAgent = s.kernels.some((k) => k.clusterRole === "main" && k.agentId);
    if (isLive(s.status) && !this.statsStarted) {
      this.statsStarted = true;
      this.stats.start(s.id, names);
    }
    if (isLive(s.status) && this.logsStarted !== "follow") {
      this.logsStarted = "follow";
      this.logs.start(s.id, true);
    } else if (isTerminal(s.status) && hasAgent && !this.logsStarted) {
      this.logsStarted = "once";
      this.logs.start(s.id, false);
    }
    this.showCli();
  }

  private showCli(): void {
    const name = this.session?.name ?? "SESSION";
    this.cli.textContent = execCommand(name, this.code.value || "print(6 * 7)");
  }

  private async destroy(): Promise<void> {
    const s = this.session;
    if (!s) return;
    this.destroyBtn.disabled = true;
    try {
      const forced = s.status === SessionStatus.TERMINATING;
      await api.sessions.destroySession({ sessionId: s.id, forced });
      await this.reload();
    } catch (err) {
      if (isUnauthenticated(err)) return this.onExpired();
      this.error.replaceChildren(errorBox(describeError(err)));
      this.destroyBtn.disabled = false;
    }
  }
}
