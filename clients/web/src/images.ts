// The Images page: the images the caller may use (ListImages), filtered by name and to
// the caller's own customized images; a click on a row shows that image (GetImage):
// labels, service ports, resource limits and the agents that have it installed.
import { api, describeError, isUnauthenticated } from "./api";
import { h } from "./dom";
import { bytes, enumName, when } from "./format";
import { AppProtocol } from "./gen/bai/api/common/v1/session_pb";
import { ImageStatus, ImageType, type Image } from "./gen/bai/api/manager/v1/image_pb";
import { errorBox, PagedTable } from "./table";

const PAGE_SIZE = 50;
const FILTER_DELAY_MS = 300; // typing in the name filter: list again once it pauses

const imageType = (t: ImageType): string => enumName(ImageType, t).toLowerCase();
const imageStatus = (s: ImageStatus): string => enumName(ImageStatus, s).toLowerCase();

/** "customized, local": where an image comes from, when not from a registry as-is. */
export function origin(im: Image): string {
  return [im.ownerUserId ? "customized" : "", im.isLocal ? "local" : ""].filter(Boolean).join(", ");
}

/** A slot amount as the page shows it: memory in human units. */
const amount = (slot: string, value: string): string => (slot === "mem" ? bytes(Number(value)) : value);

const part = (id: string, title: string, body: HTMLElement): HTMLElement =>
  h("div", { id }, h("h3", {}, title), body);

function table(head: string[], rows: (string | Node)[][], empty: string): HTMLElement {
  if (rows.length === 0) return h("p", { class: "muted" }, empty);
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, ...head.map((t) => h("th", {}, t)))),
    h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c))))),
  );
}

export class ImagesPage {
  readonly root: HTMLElement;
  private readonly table: PagedTable<Image>;
  private readonly nameFilter = h("input", {
    id: "images-name",
    type: "search",
    placeholder: "part of the name",
  });
  private readonly mineOnly = h("input", { id: "images-mine", type: "checkbox" });
  private readonly details = h("section", { class: "panel", id: "image-details", hidden: "" });
  private filterTimer = 0;
  private shown = ""; // id of the image whose details are asked for or shown

  constructor(private readonly onExpired: () => void) {
    this.table = new PagedTable<Image>(
      "Images",
      [
        {
          title: "Image",
          cell: (im) => h("button", { type: "button", class: "link", "data-image-id": im.id }, im.canonical),
        },
        { title: "Architecture", cell: (im) => im.architecture },
        { title: "Size", cell: (im) => bytes(Number(im.sizeBytes)) },
        { title: "Type", cell: (im) => imageType(im.type) },
        { title: "Aliases", cell: (im) => im.aliases.join(", ") },
        { title: "Origin", cell: (im) => origin(im) },
      ],
      async (pageToken) => {
        const r = await api.images.listImages({
          pageSize: PAGE_SIZE,
          pageToken,
          nameContains: this.nameFilter.value.trim(),
          customizedOnly: this.mineOnly.checked,
        });
        return { rows: r.images, next: r.nextPageToken };
      },
      onExpired,
    );
    this.table.root.addEventListener("click", (ev) => {
      const row = (ev.target as Element).closest("tbody tr");
      const id = row?.querySelector<HTMLElement>("[data-image-id]")?.dataset.imageId;
      if (id) void this.show(id);
    });
    this.nameFilter.addEventListener("input", () => {
      clearTimeout(this.filterTimer);
      this.filterTimer = window.setTimeout(() => void this.table.reset(), FILTER_DELAY_MS);
    });
    this.mineOnly.addEventListener("change", () => void this.table.reset());
    const filters = h(
      "div",
      { class: "filters", id: "images-filters" },
      h("label", {}, "Name contains", this.nameFilter),
      h("label", { class: "check" }, this.mineOnly, "Mine only (my customized images)"),
    );
    this.table.root.querySelector("h2")?.after(filters);
    this.root = h("div", { id: "images-page" }, this.table.root, this.details);
  }

  /** Filters cleared, details closed, first page listed. */
  reset(): Promise<void> {
    clearTimeout(this.filterTimer);
    this.nameFilter.value = "";
    this.mineOnly.checked = false;
    this.shown = "";
    this.details.hidden = true;
    return this.table.reset();
  }

  private async show(id: string): Promise<void> {
    this.shown = id;
    this.details.hidden = false;
    this.details.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const { image } = await api.images.getImage({ imageId: id });
      if (image && this.shown === id) this.render(image);
    } catch (err) {
      if (isUnauthenticated(err)) return this.onExpired();
      if (this.shown === id) this.details.replaceChildren(errorBox(describeError(err)));
    }
  }

  private render(im: Image): void {
    const facts: [string, string | Node][] = [
      ["Architecture", im.architecture],
      ["Digest", im.digest ? h("code", {}, im.digest) : "—"],
      ["Size", bytes(Number(im.sizeBytes))],
      ["Type", imageType(im.type)],
      ["Status", imageStatus(im.status)],
      ["Aliases", im.aliases.join(", ") || "—"],
      ["Origin", origin(im) || "registry"],
      ["Accelerators", im.supportedAccelerators.join(", ") || "—"],
      ["Features", im.features.join(", ") || "—"],
      ["Created", when(im.createdAt)],
    ];
    if (im.ownerUserId) facts.push(["Owner", h("code", {}, im.ownerUserId)]);
    const labels = Object.entries(im.labels).sort(([a], [b]) => a.localeCompare(b));
    this.details.dataset.imageId = im.id;
    this.details.replaceChildren(
      h("h2", {}, h("span", { id: "image-details-name" }, im.canonical)),
      h("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      part(
        "image-details-ports",
        "Service ports",
        table(
          ["Name", "Protocol", "Container ports", "Inference"],
          im.servicePorts.map((p) => [
            p.name,
            enumName(AppProtocol, p.protocol).toLowerCase(),
            p.containerPorts.join(", "),
            p.isInference ? "yes" : "",
          ]),
          "None.",
        ),
      ),
      part(
        "image-details-limits",
        "Resource limits",
        table(
          ["Slot", "Min", "Max"],
          im.resourceLimits.map((l) => [
            l.slot,
            amount(l.slot, l.min || "0"),
            l.max ? amount(l.slot, l.max) : "no limit",
          ]),
          "None.",
        ),
      ),
      part(
        "image-details-agents",
        "Installed on",
        im.installedAgentIds.length
          ? h("ul", {}, ...im.installedAgentIds.map((a) => h("li", {}, h("code", {}, a))))
          : h("p", { class: "muted" }, "No agent has it."),
      ),
      part("image-details-labels", "Labels", table(["Label", "Value"], labels, "None.")),
    );
  }
}
