// Sharing a user folder I own: invite users by email (InviteToVFolder, ro or rw: the
// contract keeps READ_WRITE_DELETE the owner's), who has it now (GetVFolder's shares,
// which owners get) with Unshare (UnshareVFolder), and my invitations for it still
// pending (ListVFolderInvitations, sent) with Cancel. A project folder is not shared by
// invitation (its members see it): there the panel sets a member's own permission
// (ShareVFolder), lists those (GetVFolder's shares) and removes one (UnshareVFolder).
// And the Invitations box: the pending invitations sent to me (ListVFolderInvitations,
// received) with Accept and Reject.
import { api, describeError, isUnauthenticated } from "./api";
import { h } from "./dom";
import { when } from "./format";
import { actionAttrs, permission } from "./folder_names";
import { MountPermission } from "./gen/bai/api/common/v1/storage_pb";
import {
  FolderInvitationDirection,
  FolderOwnershipType,
  type VFolder,
  type VFolderInvitation,
  type VFolderShare,
} from "./gen/bai/api/manager/v1/vfolder_pb";
import { errorBox, PagedTable } from "./table";

const vfolders = api.vfolders;
const INVITABLE = [MountPermission.READ_ONLY, MountPermission.READ_WRITE];
const SENT_PAGE = 1000; // one folder's pending invitations, filtered from all I sent

function listOf(id: string, empty: string, head: string[], rows: HTMLElement[]): HTMLElement {
  if (!rows.length) return h("p", { class: "muted", id }, empty);
  return h("table", { id }, h("thead", {}, h("tr", {}, ...head.map((t) => h("th", {}, t)))), h("tbody", {}, ...rows));
}

/** The sharing of one folder, shown under the folders table when its Share is clicked. */
export class SharingPanel {
  readonly root: HTMLElement;
  private folder: VFolder | null = null;
  private readonly title = h("span", { id: "sharing-folder" });
  private readonly email = h("input", {
    id: "share-email",
    type: "email",
    required: "",
    placeholder: "user@example.com",
  });
  private readonly perm = h(
    "select",
    { id: "share-permission" },
    ...INVITABLE.map((p) => h("option", { value: String(p) }, permission(p))),
  );
  private readonly form = h("form", { id: "share-form", class: "inline" });
  private readonly submit = h("button", { type: "submit" }, "Invite");
  private readonly message = h("div", { id: "share-message" });
  private readonly sharesTitle = h("h3", {}, "Shared with");
  private readonly shares = h("div", { id: "share-list" });
  private readonly pendingTitle = h("h3", {}, "Invitations waiting for an answer");
  private readonly pending = h("div", { id: "share-pending" });
  private project = false; // a project folder: member permissions, not invitations

  constructor(private readonly onExpired: () => void) {
    this.form.append(this.email, this.perm, this.submit);
    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void (this.project ? this.setPermission() : this.invite());
    });
    const close = h("button", { type: "button", id: "sharing-close" }, "Close");
    close.addEventListener("click", () => this.close());
    this.root = h(
      "section",
      { class: "panel", id: "folder-sharing", hidden: "" },
      h("h2", {}, "Sharing ", this.title, " ", close),
      this.form,
      this.message,
      this.sharesTitle,
      this.shares,
      this.pendingTitle,
      this.pending,
    );
    this.root.addEventListener("click", (ev) => {
      const button = (ev.target as Element).closest<HTMLElement>("[data-share-action]");
      const id = button?.dataset.shareId; // an email to unshare, or an invitation to cancel
      if (!id) return;
      if (button.dataset.shareAction === "unshare") {
        void this.act(`Unshared with ${id}.`, (f) => vfolders.unshareVFolder({ vfolderId: f.id, emails: [id] }));
      } else {
        void this.act("Cancelled the invitation.", () => vfolders.cancelVFolderInvitation({ invitationId: id }));
      }
    });
  }

  open(folder: VFolder): Promise<void> {
    this.folder = folder;
    this.root.hidden = false;
    this.root.dataset.folderId = folder.id;
    this.title.textContent = folder.name;
    this.project = folder.ownershipType === FolderOwnershipType.PROJECT;
    this.root.dataset.mode = this.project ? "project" : "user";
    this.submit.textContent = this.project ? "Set permission" : "Invite";
    this.sharesTitle.textContent = this.project ? "Members with their own permission" : "Shared with";
    this.pendingTitle.hidden = this.pending.hidden = this.project;
    this.form.reset();
    this.message.replaceChildren();
    return this.load();
  }

  close(): void {
    this.folder = null;
    this.root.hidden = true;
    delete this.root.dataset.folderId;
  }

  private async load(): Promise<void> {
    const folder = this.folder;
    if (!folder) return;
    try {
      const [got, sent] = await Promise.all([
        vfolders.getVFolder({ vfolderId: folder.id }),
        this.project
          ? null
          : vfolders.listVFolderInvitations({ direction: FolderInvitationDirection.SENT, pageSize: SENT_PAGE }),
      ]);
      if (this.folder !== folder) return;
      this.shares.replaceChildren(this.sharesTable(got.shares));
      const mine = sent?.invitations.filter((i) => i.vfolderId === folder.id) ?? [];
      this.pending.replaceChildren(this.pendingTable(mine));
    } catch (err) {
      this.failed(err);
    }
  }

  private sharesTable(shares: VFolderShare[]): HTMLElement {
    const rows = shares.map((s) =>
      h(
        "tr",
        { "data-email": s.email },
        h("td", {}, s.email),
        h("td", {}, permission(s.permission)),
        h("td", {}, h("button", { ...actionAttrs("share", "unshare", s.email), class: "danger" }, "Unshare")),
      ),
    );
    const none = this.project ? "No member has a permission of their own." : "Not shared with anyone.";
    return listOf("share-users", none, ["User", "Permission", ""], rows);
  }

  private pendingTable(invitations: VFolderInvitation[]): HTMLElement {
    const rows = invitations.map((i) =>
      h(
        "tr",
        { "data-email": i.inviteeEmail },
        h("td", {}, i.inviteeEmail),
        h("td", {}, permission(i.permission)),
        h("td", {}, when(i.createdAt)),
        h("td", {}, h("button", actionAttrs("share", "cancel", i.id), "Cancel")),
      ),
    );
    return listOf("share-invited", "None.", ["User", "Permission", "Sent", ""], rows);
  }

  private async invite(): Promise<void> {
    const email = this.email.value.trim();
    const granted = Number(this.perm.value) as MountPermission;
    await this.act(`Invited ${email} (${permission(granted)}).`, async (f) => {
      await vfolders.inviteToVFolder({ vfolderId: f.id, inviteeEmails: [email], permission: granted });
      this.email.value = "";
    });
  }

  private async setPermission(): Promise<void> {
    const email = this.email.value.trim();
    const granted = Number(this.perm.value) as MountPermission;
    await this.act(`${email} now has ${permission(granted)}.`, async (f) => {
      await vfolders.shareVFolder({ vfolderId: f.id, emails: [email], permission: granted });
      this.email.value = "";
    });
  }

  private async act(done: string, call: (f: VFolder) => Promise<unknown>): Promise<void> {
    const folder = this.folder;
    if (!folder) return;
    this.message.replaceChildren();
    try {
      await call(folder);
      if (this.folder !== folder) return;
      this.message.replaceChildren(h("p", { class: "muted", id: "share-done" }, done));
      await this.load();
    } catch (err) {
      this.failed(err);
    }
  }

  private failed(err: unknown): void {
    if (isUnauthenticated(err)) return this.onExpired();
    this.message.replaceChildren(errorBox(describeError(err)));
  }
}

/** Pending invitations sent to me; an accepted one's folder joins my list. */
export class InvitationsBox {
  readonly root: HTMLElement;
  private readonly table: PagedTable<VFolderInvitation>;
  private readonly message = h("div", { id: "invitation-message" });

  constructor(
    private readonly accepted: () => Promise<unknown>,
    private readonly onExpired: () => void,
  ) {
    this.table = new PagedTable<VFolderInvitation>(
      "Invitations",
      [
        { title: "Folder", cell: (i) => i.vfolderName },
        { title: "From", cell: (i) => i.inviterEmail },
        { title: "Permission", cell: (i) => permission(i.permission) },
        { title: "Sent", cell: (i) => when(i.createdAt) },
        {
          title: "",
          cell: (i) =>
            h(
              "span",
              { class: "actions" },
              h("button", actionAttrs("invitation", "accept", i.id), "Accept"),
              h("button", { ...actionAttrs("invitation", "reject", i.id), class: "danger" }, "Reject"),
            ),
        },
      ],
      async (pageToken) => {
        const r = await vfolders.listVFolderInvitations({
          direction: FolderInvitationDirection.RECEIVED,
          pageSize: 50,
          pageToken,
        });
        return { rows: r.invitations, next: r.nextPageToken };
      },
      onExpired,
    );
    this.table.root.insertBefore(this.message, this.table.root.children[1] ?? null);
    this.table.root.addEventListener("click", (ev) => {
      const button = (ev.target as Element).closest<HTMLElement>("[data-invitation-action]");
      const id = button?.dataset.invitationId;
      if (id) void this.answer(id, button.dataset.invitationAction === "accept");
    });
    this.root = this.table.root;
  }

  reset(): Promise<void> {
    this.message.replaceChildren();
    return this.table.reset();
  }

  private async answer(invitationId: string, accept: boolean): Promise<void> {
    this.message.replaceChildren();
    try {
      const { invitation } = accept
        ? await vfolders.acceptVFolderInvitation({ invitationId })
        : await vfolders.rejectVFolderInvitation({ invitationId });
      const name = invitation?.vfolderName ?? "";
      const done = accept ? `Accepted ${name}.` : `Rejected ${name}.`;
      this.message.replaceChildren(h("p", { class: "muted", id: "invitation-done" }, done));
      await Promise.all([this.table.refresh(), accept ? this.accepted() : null]);
    } catch (err) {
      if (isUnauthenticated(err)) return this.onExpired();
      this.message.replaceChildren(errorBox(describeError(err)));
    }
  }
}
