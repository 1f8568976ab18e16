// What a row of the folders table offers besides browsing: Rename (UpdateVFolder, mask
// "name") and Trash (DeleteVFolder: the folder goes to the trash, its files stay) for
// folders I own; Share (sharing.ts) on a user folder I own, or on a project folder I
// manage; Leave (LeaveVFolder) on a user folder shared with me; Clone (CloneVFolder, a
// background task followed to its end) on a folder I own or that is cloneable. And the Trash panel: trashed folders (ListVFolders with the
// DELETE_* statuses, which it omits unless asked) with Restore (RestoreVFolder) and Purge
// (PurgeVFolder: the files go for good, so it asks first).
import { api, describeError, followTask, isUnauthenticated } from "./api";
import { h } from "./dom";
import { when } from "./format";
import { actionAttrs, folderStatus } from "./folder_names";
import { BackgroundTaskStatus } from "./gen/bai/api/manager/v1/bgtask_pb";
import { FolderOwnershipType, FolderStatus, type VFolder } from "./gen/bai/api/manager/v1/vfolder_pb";
import { errorBox, PagedTable } from "./table";

const PAGE_SIZE = 50;
const vfolders = api.vfolders;

const TRASH_STATUSES = [FolderStatus.DELETE_PENDING, FolderStatus.DELETE_ONGOING, FolderStatus.DELETE_ERROR];

/** The Actions cell of a folder's row. */
export function folderActionsCell(f: VFolder): HTMLElement {
  const user = f.ownershipType === FolderOwnershipType.USER;
  const button = (action: string, label: string, cls = ""): HTMLElement =>
    h("button", { ...actionAttrs("folder", action, f.id), ...(cls ? { class: cls } : {}) }, label);
  return h(
    "span",
    { class: "actions" },
    f.isOwner ? button("rename", "Rename") : null,
    f.isOwner ? button("share", "Share") : null,
    f.isOwner || f.cloneable ? button("clone", "Clone") : null,
    !f.isOwner && user ? button("leave", "Leave") : null,
    f.isOwner ? button("trash", "Trash", "danger") : null,
  );
}

/** Runs a row's action; `changed` refreshes what lists folders. */
export class FolderActions {
  constructor(
    private readonly message: HTMLElement,
    private readonly changed: (f: VFolder) => Promise<unknown>,
    private readonly onExpired: () => void,
  ) {}

  run(action: string, f: VFolder): void {
    if (action === "rename") void this.rename(f);
    else if (action === "trash") void this.trash(f);
    else if (action === "leave") void this.leave(f);
    else if (action === "clone") void this.clone(f);
  }

  /** A copy under a new name on the same host; the list shows it CLONING, then ready. */
  private async clone(f: VFolder): Promise<void> {
    const name = prompt(`Name of the copy of ${f.name}:`, `${f.name}-copy`)?.trim();
    if (!name) return;
    this.message.replaceChildren(h("p", { class: "muted", id: "folder-cloning" }, `Cloning ${f.name} to ${name}…`));
    try {
      const { vfolder, taskId } = await vfolders.cloneVFolder({ vfolderId: f.id, targetName: name });
      if (vfolder) await this.changed(vfolder);
      const task = await followTask(taskId, new AbortController().signal, (t) => {
        const total = Number(t.totalProgress);
        const progress = document.getElementById("folder-cloning");
        if (progress && total) progress.dataset.progress = `${t.currentProgress}/${total}`;
      });
      if (task && task.status !== BackgroundTaskStatus.DONE) {
        const why = task.errors.length ? task.errors : [task.message];
        this.message.replaceChildren(h("div", { class: "error", role: "alert" }, ...why.map((e) => h("div", {}, e))));
      } else {
        this.message.replaceChildren(h("p", { class: "muted", id: "folder-action-done" }, `Cloned ${f.name} to ${name}.`));
      }
      if (vfolder) await this.changed(vfolder);
    } catch (err) {
      if (isUnauthenticated(err)) return this.onExpired();
      this.message.replaceChildren(errorBox(describeError(err)));
    }
  }

  private async rename(f: VFolder): Promise<void> {
    const name = prompt(`New name for ${f.name}:`, f.name)?.trim();
    if (!name || name === f.name) return;
    await this.act(f, `Renamed ${f.name} to ${name}.`, () =>
      vfolders.updateVFolder({ vfolder: { id: f.id, name }, updateMask: { paths: ["name"] } }),
    );
  }

  private async trash(f: VFolder): Promise<void> {
    if (!confirm(`Move ${f.name} to the trash? Its files stay until it is purged.`)) return;
    await this.act(f, `Moved ${f.name} to the trash.`, () => vfolders.deleteVFolder({ vfolderId: f.id }));
  }

  private async leave(f: VFolder): Promise<void> {
    if (!confirm(`Leave ${f.name}? Its owner must invite you again to give it back.`)) return;
    await this.act(f, `Left ${f.name}.`, () => vfolders.leaveVFolder({ vfolderId: f.id }));
  }

  private async act(f: VFolder, done: string, call: () => Promise<unknown>): Promise<void> {
    this.message.replaceChildren();
    try {
      await call();
      this.message.replaceChildren(h("p", { class: "muted", id: "folder-action-done" }, done));
      await this.changed(f);
    } catch (err) {
      if (isUnauthenticated(err)) return this.onExpired();
      this.message.replaceChildren(errorBox(describeError(err)));
    }
  }
}

/** The trashed folders, with Restore and Purge. */
export class TrashPanel {
  readonly root: HTMLElement;
  private readonly table: PagedTable<VFolder>;
  private readonly listed = new Map<string, VFolder>();
  private readonly message = h("div", { id: "trash-message" });

  constructor(
    private readonly changed: () => Promise<unknown>, // a folder came back: list it
    private readonly onExpired: () => void,
  ) {
    this.table = new PagedTable<VFolder>(
      "Trash",
      [
        { title: "Name", cell: (f) => f.name },
        { title: "Host", cell: (f) => f.host },
        { title: "Status", cell: (f) => folderStatus(f.status) },
        { title: "Since", cell: (f) => when(f.statusChangedAt) },
        { title: "", cell: (f) => this.actions(f) },
      ],
      async (pageToken) => {
        const r = await vfolders.listVFolders({ pageSize: PAGE_SIZE, pageToken, statuses: TRASH_STATUSES });
        this.listed.clear();
        for (const f of r.vfolders) this.listed.set(f.id, f);
        return { rows: r.vfolders, next: r.nextPageToken };
      },
      onExpired,
    );
    this.table.root.insertBefore(this.message, this.table.root.children[1] ?? null);
    this.table.root.addEventListener("click", (ev) => {
      const button = (ev.target as Element).closest<HTMLElement>("[data-trash-action]");
      const folder = this.listed.get(button?.dataset.trashId ?? "");
      if (button && folder) void this.act(button.dataset.trashAction ?? "", folder);
    });
    this.root = this.table.root;
  }

  reset(): Promise<void> {
    this.message.replaceChildren();
    return this.table.reset();
  }

  refresh(): Promise<void> {
    return this.table.refresh();
  }

  private actions(f: VFolder): HTMLElement {
    const pending = f.status === FolderStatus.DELETE_PENDING;
    const retry = f.status === FolderStatus.DELETE_ERROR;
    return h(
      "span",
      { class: "actions" },
      pending ? h("button", actionAttrs("trash", "restore", f.id), "Restore") : null,
      pending || retry ? h("button", { ...actionAttrs("trash", "purge", f.id), class: "danger" }, "Purge") : null,
    );
  }

  private async act(action: string, f: VFolder): Promise<void> {
    const purge = action === "purge";
    if (purge && !confirm(`Delete ${f.name} and all its files for good? This cannot be undone.`)) return;
    const doing = purge ? `Purging ${f.name}…` : `Restoring ${f.name}…`;
    this.message.replaceChildren(h("p", { class: "muted" }, doing));
    try {
      if (purge) await vfolders.purgeVFolder({ vfolderId: f.id });
      else await vfolders.restoreVFolder({ vfolderId: f.id });
      const done = purge ? `Purged ${f.name}.` : `Restored ${f.name}.`;
      this.message.replaceChildren(h("p", { class: "muted", id: "trash-done" }, done));
      await Promise.all([this.table.refresh(), purge ? null : this.changed()]);
    } catch (err) {
      if (isUnauthenticated(err)) return this.onExpired();
      this.message.replaceChildren(errorBox(describeError(err)));
    }
  }
}
