// The session's apps (its service ports): which ones run and where, "Open" (StartService,
// then the app-proxy URL with its token in a new tab) and "Stop" (ShutdownService).
// Listed once the session runs and again after each Open or Stop. StartService is
// idempotent, so Open on a running app reuses its circuit with a fresh token (ListServices
// never returns tokens).
import { api, describeError, isUnauthenticated } from "./api";
import { h } from "./dom";
import { enumName } from "./format";
import { AppProtocol } from "./gen/bai/api/common/v1/session_pb";
import type { SessionApp } from "./gen/bai/api/manager/v1/session_pb";
import { errorBox } from "./table";

/** Where a browser opens an app: its URL, with `?token=` unless it is open to the public. */
export function appLink(app: SessionApp): string {
  if (!app.token) return app.url;
  const url = new URL(app.url);
  url.searchParams.set("token", app.token);
  return url.toString();
}

export class AppsPanel {
  readonly root: HTMLElement;
  private sessionId = ""; // the session listed; "" until it runs
  private readonly body = h("div", {});
  private readonly error = h("div", { class: "apps-error" });

  constructor(private readonly onExpired: () => void) {
    this.root = h("section", { class: "panel", id: "session-apps" }, h("h3", {}, "Apps"), this.body, this.error);
    this.reset();
  }

  /** Forget the listed session (opening another one, or leaving the view). */
  reset(): void {
    this.sessionId = "";
    this.error.replaceChildren();
    this.body.replaceChildren(h("p", { class: "muted" }, "Listed when the session runs."));
  }

  /** Follow the session's status: list its apps when it starts running, drop them when it stops. */
  follow(sessionId: string, running: boolean): void {
    if (running && this.sessionId !== sessionId) {
      this.sessionId = sessionId;
      void this.load();
    } else if (!running && this.sessionId) {
      this.reset();
    }
  }

  private async load(): Promise<void> {
    const id = this.sessionId;
    try {
      const { apps } = await api.sessions.listServices({ sessionId: id });
      if (id !== this.sessionId) return;
      this.body.replaceChildren(
        apps.length ? this.table(apps) : h("p", { class: "muted" }, "This session offers no apps."),
      );
    } catch (err) {
      this.fail(id, err);
    }
  }

  private table(apps: SessionApp[]): HTMLElement {
    const row = (app: SessionApp): HTMLElement => {
      const port = app.servicePort;
      const name = port?.name ?? "";
      const openBtn = h("button", { type: "button", class: "app-open" }, "Open");
      openBtn.addEventListener("click", () => void this.open(name, openBtn));
      const stopBtn = h("button", { type: "button", class: "app-stop danger" }, "Stop");
      stopBtn.addEventListener("click", () => void this.stop(name, stopBtn));
      return h(
        "tr",
        { "data-app": name },
        h("td", {}, name),
        h("td", {}, enumName(AppProtocol, port?.protocol ?? 0).toLowerCase()),
        h("td", {}, (port?.containerPorts ?? []).join(", ")),
        h("td", { class: "app-state" }, app.isRunning ? h("code", {}, app.url) : "stopped"),
        h("td", {}, openBtn, app.isRunning ? stopBtn : null),
      );
    };
    return h(
      "table",
      {},
      h("thead", {}, h("tr", {}, ...["App", "Protocol", "Ports", "State", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, ...apps.map(row)),
    );
  }

  private async open(service: string, btn: HTMLButtonElement): Promise<void> {
    const id = this.sessionId;
    btn.disabled = true;
    this.error.replaceChildren();
    // Open the tab now, while the click still counts as a user gesture (popup blockers
    // refuse window.open after a slow await), and send it to the app once it is up.
    const tab = window.open("", "_blank");
    try {
      const { app } = await api.sessions.startService({ sessionId: id, service });
      if (!app) throw new Error("StartService answered no app");
      const link = appLink(app);
      if (tab) {
        tab.opener = null; // the app's origin gets no handle on this page
        tab.location.href = link;
      } else {
        window.open(link, "_blank", "noopener");
      }
      if (id === this.sessionId) await this.load();
    } catch (err) {
      tab?.close();
      this.fail(id, err);
    } finally {
      btn.disabled = false;
    }
  }

  private async stop(service: string, btn: HTMLButtonElement): Promise<void> {
    const id = this.sessionId;
    btn.disabled = true;
    this.error.replaceChildren();
    try {
      await api.sessions.shutdownService({ sessionId: id, service });
      if (id === this.sessionId) await this.load();
    } catch (err) {
      btn.disabled = false;
      this.fail(id, err);
    }
  }

  private fail(id: string, err: unknown): void {
    if (isUnauthenticated(err)) return this.onExpired();
    if (id === this.sessionId) this.error.replaceChildren(errorBox(describeError(err)));
  }
}
