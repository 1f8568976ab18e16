// "Commit to image" on a RUNNING session: CommitSession, then the background task
// followed with WatchTask to its end (the new image's name, or why it failed).
import { api, describeError, endless, isCancelled, isUnauthenticated } from "./api";
import { h } from "./dom";
import { enumName, statusBadge } from "./format";
import { BackgroundTaskStatus, type BackgroundTask } from "./gen/bai/api/manager/v1/bgtask_pb";
import { errorBox } from "./table";

export class CommitPanel {
  readonly root: HTMLElement;
  private sessionId = "";
  private watch: AbortController | null = null;
  private readonly form = h("form", { id: "commit-form", class: "launch" });
  private readonly imageName = h("input", { id: "commit-name", name: "image_name", required: "" });
  private readonly imageTag = h("input", { id: "commit-tag", name: "image_tag", placeholder: "a timestamp" });
  private readonly fieldErrors: Record<string, HTMLElement> = {
    image_name: h("span", { id: "commit-name-error", class: "field-error" }),
    image_tag: h("span", { id: "commit-tag-error", class: "field-error" }),
  };
  private readonly submit = h("button", { type: "submit" }, "Commit");
  private readonly progress = h("div", { id: "commit-progress" });

  constructor(private readonly onExpired: () => void) {
    this.form.append(
      h(
        "div",
        { class: "grid" },
        h("label", {}, "Image name", this.imageName, this.fieldErrors.image_name),
        h("label", {}, "Tag (optional)", this.imageTag, this.fieldErrors.image_tag),
      ),
      this.submit,
    );
    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.commit();
    });
    this.root = h(
      "section",
      { class: "panel", id: "session-commit", hidden: "" },
      h("h3", {}, "Commit to image"),
      this.form,
      this.progress,
    );
  }

  /** Show the form while `sessionId` runs; another session starts afresh. */
  follow(sessionId: string, running: boolean): void {
    if (sessionId !== this.sessionId) {
      this.reset();
      this.sessionId = sessionId;
    }
    this.form.hidden = !running;
    this.root.hidden = !running && !this.progress.firstChild;
  }

  reset(): void {
    this.watch?.abort();
    this.watch = null;
    this.sessionId = "";
    this.form.reset();
    this.root.hidden = true;
    this.showErrors([]);
    this.progress.replaceChildren();
    delete this.progress.dataset.status;
  }

  private showErrors(violations: string[]): void {
    for (const [name, el] of Object.entries(this.fieldErrors)) {
      const mine = violations.filter((v) => v.startsWith(`${name}: `));
      el.textContent = mine.map((v) => v.slice(name.length + 2)).join("; ");
    }
  }

  private async commit(): Promise<void> {
    this.watch?.abort();
    const watch = (this.watch = new AbortController());
    this.submit.disabled = true;
    this.showErrors([]);
    delete this.progress.dataset.status;
    this.progress.replaceChildren(h("p", { class: "muted" }, "Committing…"));
    try {
      const { taskId } = await api.sessions.commitSession({
        sessionId: this.sessionId,
        imageName: this.imageName.value.trim(),
        imageTag: this.imageTag.value.trim(),
      });
      for await (const { task } of api.tasks.watchTask({ taskId }, endless(watch.signal))) {
        if (task) this.show(task);
      }
    } catch (err) {
      if (isUnauthenticated(err)) return this.onExpired();
      if (isCancelled(err)) return;
      const e = describeError(err);
      this.showErrors(e.violations);
      this.progress.replaceChildren(errorBox(e));
    } finally {
      this.submit.disabled = false;
    }
  }

  private show(task: BackgroundTask): void {
    const status = enumName(BackgroundTaskStatus, task.status);
    const total = Number(task.totalProgress);
    const image = task.result["image"];
    this.progress.dataset.status = status;
    const parts: Node[] = [
      h(
        "p",
        {},
        statusBadge(status),
        " ",
        task.message,
        total ? h("span", { class: "muted" }, ` (${task.currentProgress} of ${total})`) : null,
      ),
    ];
    if (task.status === BackgroundTaskStatus.DONE && image) {
      parts.push(h("p", {}, "Image: ", h("code", { id: "commit-image" }, image)));
    }
    if (task.errors.length) {
      parts.push(h("div", { class: "error", role: "alert" }, ...task.errors.map((e) => h("div", {}, e))));
    }
    this.progress.replaceChildren(...parts);
  }
}

