// The file browser of one folder: a directory's entries (ListFiles) with breadcrumbs,
// New directory (Mkdir), Delete (DeleteFiles; a directory recursively, followed as a
// background task), Move (MoveFile: rename, or move within the folder), Download (a token
// from RequestDownloadToken, then the browser itself GETs /storage/v1/download, so the file
// streams to disk; a directory comes as a zip) and Upload (uploads.ts, resumable).
import type { Client } from "@connectrpc/connect";
import { describeError, followTask, isCancelled, isUnauthenticated } from "./api";
import { h } from "./dom";
import { bytes, enumName, when } from "./format";
import { FileType, MountPermission, type FileEntry } from "./gen/bai/api/common/v1/storage_pb";
import { BackgroundTaskStatus } from "./gen/bai/api/manager/v1/bgtask_pb";
import type { VFolder, VFolderService } from "./gen/bai/api/manager/v1/vfolder_pb";
import { errorBox, PagedTable } from "./table";
import { FileUpload, transferUrl, TransferError } from "./uploads";

const PAGE_SIZE = 200;

const join = (dir: string, name: string): string => (dir ? `${dir}/${name}` : name);
const fileType = (t: FileType): string => (t === FileType.DIRECTORY ? "dir" : enumName(FileType, t).toLowerCase());

export class FileBrowser {
  readonly root: HTMLElement;
  private folder: VFolder | null = null;
  private dir = ""; // the directory shown, relative to the folder root
  private entries = new Map<string, FileEntry>(); // the listed page, by name
  private watch: AbortController | null = null; // background deletions being followed
  private readonly table: PagedTable<FileEntry>;
  private readonly title = h("span", { id: "files-folder" });
  private readonly usage = h("span", { id: "files-usage", class: "muted" });
  private readonly crumbs = h("nav", { id: "files-crumbs", class: "crumbs" });
  private readonly tools = h("div", { class: "filters", id: "files-tools" });
  private readonly dirName = h("input", { id: "files-mkdir-name", placeholder: "new directory name" });
  private readonly picker = h("input", { id: "files-upload", type: "file", multiple: "" });
  private readonly zipBtn = h("button", { type: "button", id: "files-zip" }, "Download as zip");
  private readonly message = h("div", { id: "files-message" });
  private readonly uploads = h("ul", { id: "files-uploads", class: "uploads" });
  // Navigated to for each download: the browser saves what the proxy streams.
  private readonly link = h("a", { id: "files-download", download: "", hidden: "" });

  constructor(
    private readonly client: Client<typeof VFolderService>,
    private readonly onExpired: () => void,
  ) {
    this.table = new PagedTable<FileEntry>(
      "Files",
      [
        { title: "Name", cell: (e) => this.nameCell(e) },
        { title: "Type", cell: (e) => fileType(e.type) },
        { title: "Size", cell: (e) => (e.type === FileType.DIRECTORY ? "" : bytes(Number(e.size))) },
        { title: "Modified", cell: (e) => when(e.modifiedAt) },
        { title: "", cell: (e) => this.actions(e) },
      ],
      (pageToken) => this.list(pageToken),
      onExpired,
    );
    this.table.root.addEventListener("click", (ev) => this.clicked(ev.target as Element));
    this.crumbs.addEventListener("click", (ev) => {
      const path = (ev.target as Element).closest<HTMLElement>("[data-path]")?.dataset.path;
      if (path !== undefined) void this.cd(path);
    });
    const mkdir = h(
      "form",
      { id: "files-mkdir", class: "inline" },
      this.dirName,
      h("button", { type: "submit" }, "New directory"),
    );
    mkdir.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.mkdir();
    });
    this.picker.addEventListener("change", () => {
      const files = [...(this.picker.files ?? [])];
      this.picker.value = ""; // the same file may be chosen again
      if (files.length) void this.upload(files);
    });
    this.zipBtn.addEventListener("click", () => void this.download(this.dir, true));
    this.tools.append(mkdir, h("label", { class: "upload" }, "Upload files", this.picker), this.zipBtn);
    const head = h(
      "section",
      { class: "panel", id: "folder-files" },
      h("h2", {}, this.title, " ", this.usage),
      this.crumbs,
      this.tools,
      this.message,
      this.uploads,
      this.link,
    );
    this.root = h("div", { id: "folder-browser", hidden: "" }, head, this.table.root);
  }

  open(folder: VFolder): void {
    this.close();
    this.folder = folder;
    this.root.hidden = false;
    this.root.dataset.folderId = folder.id;
    this.title.textContent = folder.name;
    const canWrite = folder.callerPermission >= MountPermission.READ_WRITE;
    this.dirName.parentElement!.hidden = this.picker.parentElement!.hidden = !canWrite;
    void this.measure(folder);
    void this.cd("");
  }

  close(): void {
    this.watch?.abort();
    this.watch = null;
    this.folder = null;
    this.root.hidden = true;
    delete this.root.dataset.folderId;
    this.message.replaceChildren();
    this.uploads.replaceChildren();
    this.usage.textContent = "";
  }

  private cd(dir: string): Promise<void> {
    this.dir = dir;
    this.crumbs.dataset.path = dir;
    const parts = dir ? dir.split("/") : [];
    const items: (Node | string)[] = [this.crumb(this.folder?.name ?? "/", "", parts.length === 0)];
    parts.forEach((name, i) => {
      items.push(" / ", this.crumb(name, parts.slice(0, i + 1).join("/"), i === parts.length - 1));
    });
    this.crumbs.replaceChildren(...items);
    return this.table.reset();
  }

  private crumb(label: string, path: string, current: boolean): HTMLElement {
    if (current) return h("strong", {}, label);
    return h("button", { type: "button", class: "link", "data-path": path }, label);
  }

  private async list(pageToken: string): Promise<{ rows: FileEntry[]; next: string }> {
    const folder = this.folder;
    if (!folder) return { rows: [], next: "" };
    const r = await this.client.listFiles({ vfolderId: folder.id, path: this.dir, pageSize: PAGE_SIZE, pageToken });
    this.entries = new Map(r.entries.map((e) => [e.name, e]));
    return { rows: r.entries, next: r.nextPageToken };
  }

  private nameCell(e: FileEntry): string | Node {
    if (e.type !== FileType.DIRECTORY) return e.name;
    return h("button", { type: "button", class: "link", "data-dir": e.name }, `${e.name}/`);
  }

  private actions(e: FileEntry): HTMLElement {
    const dir = e.type === FileType.DIRECTORY;
    const granted = this.folder?.callerPermission ?? 0;
    const canDelete = granted >= MountPermission.READ_WRITE_DELETE;
    return h(
      "span",
      { class: "actions" },
      h(
        "button",
        { type: "button", "data-action": dir ? "zip" : "download", "data-name": e.name },
        dir ? "Download as zip" : "Download",
      ),
      granted >= MountPermission.READ_WRITE
        ? h("button", { type: "button", "data-action": "move", "data-name": e.name }, "Move")
        : null,
      canDelete
        ? h("button", { type: "button", class: "danger", "data-action": "delete", "data-name": e.name }, "Delete")
        : null,
    );
  }

  private clicked(target: Element): void {
    const into = target.closest<HTMLElement>("[data-dir]")?.dataset.dir;
    if (into) return void this.cd(join(this.dir, into));
    const button = target.closest<HTMLElement>("[data-action]");
    const entry = this.entries.get(button?.dataset.name ?? "");
    if (!button || !entry) return;
    const path = join(this.dir, entry.name);
    if (button.dataset.action === "delete") void this.remove(entry, path);
    else if (button.dataset.action === "move") void this.move(path);
    else void this.download(path, button.dataset.action === "zip");
  }

  /** The whole folder's usage, with when it was measured: the manager caches it a minute. */
  private async measure(folder: VFolder): Promise<void> {
    try {
      const u = await this.client.getVFolderUsage({ vfolderId: folder.id });
      if (this.folder !== folder) return;
      const measured = u.measuredAt ? ` (measured ${when(u.measuredAt)})` : "";
      this.usage.textContent = `${u.fileCount} files, ${bytes(Number(u.usedBytes))}${measured}`;
    } catch (err) {
      if (isUnauthenticated(err)) this.onExpired();
    }
  }

  private failed(err: unknown): void {
    if (isUnauthenticated(err)) return this.onExpired();
    if (isCancelled(err)) return;
    this.message.replaceChildren(errorBox(err instanceof TransferError ? err.error : describeError(err)));
  }

  private async download(path: string, archive: boolean): Promise<void> {
    const folder = this.folder;
    if (!folder) return;
    this.message.replaceChildren();
    try {
      const { ticket } = await this.client.requestDownloadToken({ vfolderId: folder.id, path, archive });
      if (!ticket || this.folder !== folder) return;
      this.link.href = transferUrl("download", ticket.token);
      this.link.click();
    } catch (err) {
      this.failed(err);
    }
  }

  private async mkdir(): Promise<void> {
    const folder = this.folder;
    const name = this.dirName.value.trim();
    if (!folder || !name) return;
    this.message.replaceChildren();
    try {
      await this.client.mkdir({ vfolderId: folder.id, paths: [join(this.dir, name)] });
      this.dirName.value = "";
      await this.table.refresh();
    } catch (err) {
      this.failed(err);
    }
  }

  private async remove(entry: FileEntry, path: string): Promise<void> {
    const folder = this.folder;
    const dir = entry.type === FileType.DIRECTORY;
    if (!folder || !confirm(dir ? `Delete the directory ${path} and everything in it?` : `Delete ${path}?`)) return;
    this.message.replaceChildren(h("p", { class: "muted" }, `Deleting ${path}…`));
    try {
      const { taskId } = await this.client.deleteFiles({ vfolderId: folder.id, paths: [path], recursive: dir });
      const task = taskId ? await followTask(taskId, (this.watch ??= new AbortController()).signal) : null;
      if (this.folder !== folder) return;
      if (task && task.status !== BackgroundTaskStatus.DONE) {
        const why = task.errors.length ? task.errors : [task.message];
        this.message.replaceChildren(h("div", { class: "error", role: "alert" }, ...why.map((e) => h("div", {}, e))));
      } else {
        this.message.replaceChildren(h("p", { class: "muted", id: "files-deleted" }, `Deleted ${path}.`));
      }
      void this.measure(folder);
      await this.table.refresh();
    } catch (err) {
      this.failed(err);
    }
  }

  private async upload(files: File[]): Promise<void> {
    const folder = this.folder;
    if (!folder) return;
    const dir = this.dir;
    const changed = (): void => {
      if (this.folder !== folder) return;
      void this.measure(folder);
      void this.table.refresh();
    };
    const rows = files.map(
      (f) => new FileUpload(this.client, folder, join(dir, f.name), f, this.onExpired, changed),
    );
    this.uploads.append(...rows.map((r) => r.root));
    for (const row of rows) {
      if (this.folder !== folder) return; // another folder was opened meanwhile
      await row.start();
    }
    changed();
  }

  private async move(path: string): Promise<void> {
    const folder = this.folder;
    const target = prompt(`Move or rename ${path} to (a path in the folder):`, path)?.trim().replace(/^\/+/, "");
    if (!folder || !target || target === path) return;
    this.message.replaceChildren();
    try {
      await this.client.moveFile({ vfolderId: folder.id, sourcePath: path, targetPath: target });
      this.message.replaceChildren(h("p", { class: "muted", id: "files-moved" }, `Moved ${path} to ${target}.`));
      await this.table.refresh();
    } catch (err) {
      this.failed(err);
    }
  }
}
