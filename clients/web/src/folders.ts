// The Folders page ("Data & Storage"): the invitations sent to me (sharing.ts), the
// virtual folders the caller can use (ListVFolders) with each one's actions
// (folder_actions.ts: rename, trash, share, leave), a form to create one (CreateVFolder on
// a host from ListVFolderHosts), the sharing of the folder whose Share was clicked, the
// file browser (files.ts) of the folder clicked in the table, and the trash.
import { api, describeError, isUnauthenticated } from "./api";
import { h } from "./dom";
import { FileBrowser } from "./files";
import { when } from "./format";
import { FolderActions, folderActionsCell, TrashPanel } from "./folder_actions";
import { folderStatus, ownership, permission, usageMode } from "./folder_names";
import { FolderUsageMode } from "./gen/bai/api/common/v1/storage_pb";
import type { VFolder } from "./gen/bai/api/manager/v1/vfolder_pb";
import { InvitationsBox, SharingPanel } from "./sharing";
import { errorBox, PagedTable } from "./table";

const PAGE_SIZE = 50;

const vfolders = api.vfolders;

export class FoldersPage {
  readonly root: HTMLElement;
  private readonly table: PagedTable<VFolder>;
  private readonly listed = new Map<string, VFolder>(); // the table's current page, by id
  private readonly browser: FileBrowser;
  private readonly sharing: SharingPanel;
  private readonly trash: TrashPanel;
  private readonly invitations: InvitationsBox;
  private readonly actions: FolderActions;
  private readonly actionMessage = h("div", { id: "folder-action-message" });
  private readonly form = h("form", { id: "folder-form", class: "launch" });
  private readonly name = h("input", { id: "folder-name", name: "name", required: "" });
  private readonly host = h("select", { id: "folder-host", name: "host" });
  private readonly usage = h(
    "select",
    { id: "folder-usage", name: "usage_mode" },
    ...[FolderUsageMode.GENERAL, FolderUsageMode.MODEL, FolderUsageMode.DATA].map((m) =>
      h("option", { value: String(m) }, usageMode(m)),
    ),
  );
  private readonly fieldErrors: Record<string, HTMLElement> = {
    name: h("span", { id: "folder-name-error", class: "field-error" }),
    host: h("span", { id: "folder-host-error", class: "field-error" }),
    usage_mode: h("span", { id: "folder-usage-error", class: "field-error" }),
  };
  private readonly submit = h("button", { type: "submit" }, "Create");
  private readonly result = h("div", { id: "folder-create-result" });

  constructor(private readonly onExpired: () => void) {
    this.browser = new FileBrowser(vfolders, onExpired);
    this.sharing = new SharingPanel(onExpired);
    // After a rename, trash or leave: the folder's open panels are stale, the lists too.
    const changed = (f: VFolder): Promise<unknown> => {
      if (f.id === this.browser.root.dataset.folderId) this.browser.close();
      if (f.id === this.sharing.root.dataset.folderId) this.sharing.close();
      return Promise.all([this.table.refresh(), this.trash.refresh()]);
    };
    this.trash = new TrashPanel(() => this.table.refresh(), onExpired);
    this.invitations = new InvitationsBox(() => this.table.refresh(), onExpired);
    this.actions = new FolderActions(this.actionMessage, changed, onExpired);
    this.table = new PagedTable<VFolder>(
      "Folders",
      [
        {
          title: "Name",
          cell: (f) => h("button", { type: "button", class: "link", "data-folder-id": f.id }, f.name),
        },
        { title: "Host", cell: (f) => f.host },
        { title: "Usage", cell: (f) => usageMode(f.usageMode) },
        { title: "Ownership", cell: (f) => ownership(f.ownershipType) },
        { title: "Permission", cell: (f) => permission(f.callerPermission) },
        { title: "Status", cell: (f) => folderStatus(f.status) },
        { title: "Created", cell: (f) => when(f.createdAt) },
        { title: "", cell: (f) => folderActionsCell(f) },
      ],
      async (pageToken) => {
        const r = await vfolders.listVFolders({ pageSize: PAGE_SIZE, pageToken });
        this.listed.clear();
        for (const f of r.vfolders) this.listed.set(f.id, f);
        return { rows: r.vfolders, next: r.nextPageToken };
      },
      onExpired,
    );
    this.table.root.insertBefore(this.actionMessage, this.table.root.children[1] ?? null);
    this.table.root.addEventListener("click", (ev) => {
      const target = (ev.target as Element).closest<HTMLElement>("[data-folder-id], [data-folder-action]");
      const folder = this.listed.get(target?.dataset.folderId ?? "");
      const action = target?.dataset.folderAction;
      if (!folder) return;
      if (!action) return this.browser.open(folder);
      if (action === "share") return void this.sharing.open(folder);
      this.actions.run(action, folder);
    });
    this.form.append(
      h(
        "div",
        { class: "grid" },
        h("label", {}, "Name", this.name, this.fieldErrors.name),
        h("label", {}, "Host", this.host, this.fieldErrors.host),
        h("label", {}, "Usage mode", this.usage, this.fieldErrors.usage_mode),
      ),
      this.submit,
    );
    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.create();
    });
    const create = h(
      "section",
      { class: "panel", id: "panel-new-folder" },
      h("h2", {}, "New folder"),
      this.form,
      this.result,
    );
    this.root = h(
      "div",
      { id: "folders-page" },
      create,
      this.invitations.root,
      this.table.root,
      this.sharing.root,
      this.browser.root,
      this.trash.root,
    );
  }

  /** Form cleared, browser closed, hosts and the first page of folders fetched. */
  reset(): Promise<unknown> {
    this.form.reset();
    this.showErrors([]);
    this.result.replaceChildren();
    this.actionMessage.replaceChildren();
    this.browser.close();
    this.sharing.close();
    return Promise.all([this.loadHosts(), this.table.reset(), this.invitations.reset(), this.trash.reset()]);
  }

  private async loadHosts(): Promise<void> {
    try {
      const r = await vfolders.listVFolderHosts({});
      const usable = r.hosts.filter((x) => x.permissions?.permissions.includes("create-vfolder"));
      // No choice offered: the server's default host.
      this.host.replaceChildren(
        ...(usable.length ? [] : [h("option", { value: "" }, "default")]),
        ...usable.map((x) =>
          h("option", x.name === r.defaultHost ? { value: x.name, selected: "" } : { value: x.name }, x.name),
        ),
      );
    } catch (err) {
      if (isUnauthenticated(err)) return this.onExpired();
      this.result.replaceChildren(errorBox(describeError(err)));
    }
  }

  private showErrors(violations: string[]): void {
    for (const [name, el] of Object.entries(this.fieldErrors)) {
      const mine = violations.filter((v) => v.startsWith(`${name}: `));
      el.textContent = mine.map((v) => v.slice(name.length + 2)).join("; ");
    }
  }

  private async create(): Promise<void> {
    this.submit.disabled = true;
    this.showErrors([]);
    this.result.replaceChildren(h("p", { class: "muted" }, "Creating…"));
    try {
      const { vfolder } = await vfolders.createVFolder({
        name: this.name.value.trim(),
        host: this.host.value,
        usageMode: Number(this.usage.value) as FolderUsageMode,
      });
      this.name.value = "";
      this.result.replaceChildren(
        h("p", {}, "Created ", h("strong", { id: "folder-created" }, vfolder?.name ?? ""), "."),
      );
      await this.table.refresh();
    } catch (err) {
      if (isUnauthenticated(err)) return this.onExpired();
      const e = describeError(err);
      this.showErrors(e.violations);
      this.result.replaceChildren(errorBox(e));
    } finally {
      this.submit.disabled = false;
    }
  }
}
