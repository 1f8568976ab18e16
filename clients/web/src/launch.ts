// The launch form (image, resource group, type, cpu, memory, startup command) and,
// once a session is enqueued, its status transitions as they come.
import { api, describeError, isUnauthenticated } from "./api";
import { h } from "./dom";
import type { SessionFeed } from "./feed";
import { isTerminal, sessionStatus, statusBadge } from "./format";
import { SessionType } from "./gen/bai/api/common/v1/session_pb";
import type { Image } from "./gen/bai/api/manager/v1/image_pb";
import type { Session } from "./gen/bai/api/manager/v1/session_pb";
import { errorBox } from "./table";

const GiB = 2 ** 30;

/** A v4 UUID for request_id; crypto.randomUUID exists only in secure contexts. */
function uuid4(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function field(label: string, control: HTMLElement, extra: Record<string, string> = {}): HTMLElement {
  return h("label", extra, label, control);
}

/** PENDING → SCHEDULED → … → the current status, from the session's own history. */
export function transitions(s: Session): HTMLElement {
  const seen = s.statusHistory.map((t) => sessionStatus(t.status));
  const current = sessionStatus(s.status);
  if (seen[seen.length - 1] !== current) seen.push(current);
  const parts: (Node | string)[] = [];
  seen.forEach((name, i) => parts.push(...(i ? [" → "] : []), statusBadge(name)));
  return h("span", { class: "transitions" }, ...parts);
}

export class LaunchForm {
  readonly root: HTMLElement;
  private images: Image[] = [];
  private readonly form = h("form", { id: "launch-form", class: "launch" });
  private readonly name = h("input", { id: "launch-name", name: "name", placeholder: "generated" });
  private readonly image = h("select", { id: "launch-image", name: "image", required: "" });
  private readonly group = h("select", { id: "launch-group", name: "group" });
  private readonly type = h(
    "select",
    { id: "launch-type", name: "type" },
    h("option", { value: "interactive" }, "interactive"),
    h("option", { value: "batch" }, "batch"),
  );
  private readonly cpu = h("input", { id: "launch-cpu", type: "number", min: "0.1", step: "0.1", value: "1" });
  private readonly mem = h("input", {
    id: "launch-mem",
    type: "number",
    min: "0.0625",
    step: "0.0625",
    value: "1",
  });
  private readonly command = h("textarea", { id: "launch-command", rows: "2", placeholder: "python train.py" });
  private readonly commandField = field("Startup command (batch)", this.command, { hidden: "" });
  private readonly submit = h("button", { type: "submit" }, "Launch");
  private readonly progress = h("div", { id: "launch-progress" });
  private watching = ""; // id of the session whose transitions are shown

  constructor(
    feed: SessionFeed,
    private readonly onExpired: () => void,
  ) {
    this.form.append(
      h(
        "div",
        { class: "grid" },
        field("Image", this.image),
        field("Resource group", this.group),
        field("Type", this.type),
        field("Name", this.name),
        field("CPU cores", this.cpu),
        field("Memory (GiB)", this.mem),
      ),
      this.commandField,
      this.submit,
    );
    this.type.addEventListener("change", () => {
      this.commandField.hidden = this.type.value !== "batch";
      this.command.required = this.type.value === "batch";
    });
    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.launch();
    });
    feed.subscribe((e) => {
      if (this.watching && (e === null || e.sessionId === this.watching)) void this.follow();
    });
    this.root = h(
      "section",
      { class: "panel", id: "panel-launch" },
      h("h2", {}, "Start a session"),
      this.form,
      this.progress,
    );
  }

  /** Forget the last launch; fill the image and resource-group choices. */
  async load(): Promise<void> {
    this.watching = "";
    this.progress.replaceChildren();
    delete this.progress.dataset.status;
    try {
      const [images, groups] = await Promise.all([
        api.images.listImages({ pageSize: 1000 }),
        api.scalingGroups.listAllowedScalingGroups({}),
      ]);
      this.images = images.images;
      this.image.replaceChildren(
        ...this.images.map((im, i) => h("option", { value: String(i) }, `${im.canonical} (${im.architecture})`)),
      );
      this.group.replaceChildren(
        ...groups.scalingGroups.map((g) =>
          h("option", g.isDefault ? { value: g.name, selected: "" } : { value: g.name }, g.name),
        ),
      );
    } catch (err) {
      if (isUnauthenticated(err)) return this.onExpired();
      this.progress.replaceChildren(errorBox(describeError(err)));
    }
  }

  private async launch(): Promise<void> {
    const image = this.images[Number(this.image.value)];
    if (!image) return;
    const batch = this.type.value === "batch";
    this.submit.disabled = true;
    this.watching = "";
    this.progress.replaceChildren(h("p", { class: "muted" }, "Enqueueing…"));
    try {
      const { session } = await api.sessions.createSession({
        name: this.name.value.trim(),
        image: image.canonical,
        architecture: image.architecture,
        type: batch ? SessionType.BATCH : SessionType.INTERACTIVE,
        resourceSlots: {
          slots: { cpu: this.cpu.value, mem: String(Math.round(Number(this.mem.value) * GiB)) },
        },
        startupCommand: batch ? this.command.value : "",
        scalingGroup: this.group.value,
        requestId: uuid4(),
        enqueueOnly: true, // transitions arrive through the event feed
      });
      if (session) {
        this.watching = session.id;
        this.show(session);
        this.form.reset();
        this.commandField.hidden = true;
      }
    } catch (err) {
      if (isUnauthenticated(err)) return this.onExpired();
      this.progress.replaceChildren(errorBox(describeError(err)));
    } finally {
      this.submit.disabled = false;
    }
  }

  private async follow(): Promise<void> {
    try {
      const { session } = await api.sessions.getSession({ sessionId: this.watching });
      if (session && session.id === this.watching) this.show(session);
    } catch (err) {
      if (isUnauthenticated(err)) this.onExpired();
    }
  }

  private show(s: Session): void {
    this.progress.dataset.status = sessionStatus(s.status);
    this.progress.replaceChildren(
      h(
        "p",
        {},
        h("a", { href: `#/sessions/${s.id}`, class: "session-link" }, s.name),
        ": ",
        transitions(s),
        isTerminal(s.status) && s.statusMessage ? h("span", { class: "muted" }, ` (${s.statusMessage})`) : null,
      ),
    );
  }
}
