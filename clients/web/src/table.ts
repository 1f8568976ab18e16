// A paged table over one List* RPC (page_size / page_token / next_page_token).
import { describeError, isUnauthenticated, type ApiError } from "./api";
import { h } from "./dom";

export interface Column<Row> {
  title: string;
  cell: (row: Row) => string | Node;
}

export interface Page<Row> {
  rows: Row[];
  next: string; // next_page_token; "" on the last page
}

export function errorBox(e: ApiError): HTMLElement {
  return h(
    "div",
    { class: "error", role: "alert" },
    h("strong", {}, e.reason || e.code),
    e.reason ? h("span", { class: "code" }, ` (${e.code})`) : null,
    ": ",
    e.message || "request failed",
    e.violations.length ? h("ul", {}, ...e.violations.map((v) => h("li", {}, v))) : null,
  );
}

export class PagedTable<Row> {
  readonly root: HTMLElement;
  private tokens: string[] = [""]; // page tokens of the pages seen so far; last = current
  private next = "";
  private loading = false;
  private again = false; // a refresh arrived while loading: load once more after
  private readonly body = h("div", { class: "table-body" });
  private readonly prevBtn = h("button", { type: "button", class: "prev" }, "‹ Prev");
  private readonly nextBtn = h("button", { type: "button", class: "next" }, "Next ›");
  private readonly pageLabel = h("span", { class: "page" });

  constructor(
    readonly name: string,
    private readonly columns: Column<Row>[],
    private readonly fetch: (pageToken: string) => Promise<Page<Row>>,
    private readonly onUnauthenticated: () => void,
  ) {
    this.prevBtn.addEventListener("click", () => {
      this.tokens.pop();
      void this.load();
    });
    this.nextBtn.addEventListener("click", () => {
      this.tokens.push(this.next);
      void this.load();
    });
    this.root = h(
      "section",
      { class: "panel", id: `panel-${name.toLowerCase().replace(/\s+/g, "-")}` },
      h("h2", {}, name),
      this.body,
      h("div", { class: "pager" }, this.prevBtn, this.pageLabel, this.nextBtn),
    );
  }

  /** Back to the first page and fetch it. */
  reset(): Promise<void> {
    this.tokens = [""];
    return this.load();
  }

  /** Fetch the current page again, without a loading placeholder; bursts coalesce. */
  async refresh(): Promise<void> {
    if (this.loading) {
      this.again = true;
      return;
    }
    this.loading = true;
    try {
      do {
        this.again = false;
        await this.load(true);
      } while (this.again);
    } finally {
      this.loading = false;
    }
  }

  private async load(quiet = false): Promise<void> {
    this.prevBtn.disabled = this.nextBtn.disabled = true;
    this.pageLabel.textContent = `page ${this.tokens.length}`;
    if (!quiet) this.body.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const page = await this.fetch(this.tokens[this.tokens.length - 1]);
      this.next = page.next;
      this.body.replaceChildren(this.render(page.rows));
      this.nextBtn.disabled = page.next === "";
    } catch (err) {
      if (isUnauthenticated(err)) this.onUnauthenticated();
      this.body.replaceChildren(errorBox(describeError(err)));
    }
    this.prevBtn.disabled = this.tokens.length <= 1;
  }

  private render(rows: Row[]): HTMLElement {
    if (rows.length === 0) return h("p", { class: "muted" }, "Nothing to show.");
    return h(
      "table",
      {},
      h("thead", {}, h("tr", {}, ...this.columns.map((c) => h("th", {}, c.title)))),
      h("tbody", {}, ...rows.map((r) => h("tr", {}, ...this.columns.map((c) => h("td", {}, c.cell(r)))))),
    );
  }
}
