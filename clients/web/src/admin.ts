// The Admin page: paged domains, projects and users.
import { api } from "./api";
import { h } from "./dom";
import { UserRole } from "./gen/bai/api/manager/v1/auth_pb";
import type { Domain } from "./gen/bai/api/manager/v1/domain_pb";
import type { Project } from "./gen/bai/api/manager/v1/project_pb";
import { UserStatus, type User } from "./gen/bai/api/manager/v1/user_pb";
import { when } from "./format";
import { PagedTable } from "./table";

const PAGE_SIZE = 20;

export const role = (r: UserRole): string => (UserRole[r] ?? String(r)).toLowerCase();
const status = (s: UserStatus): string => (UserStatus[s] ?? String(s)).toLowerCase().replace(/_/g, " ");
const yesNo = (b: boolean): string => (b ? "yes" : "no");

export class AdminPage {
  readonly root: HTMLElement;
  private readonly tables: [PagedTable<Domain>, PagedTable<Project>, PagedTable<User>];

  constructor(onExpired: () => void) {
    const domains = new PagedTable<Domain>(
      "Domains",
      [
        { title: "Name", cell: (d) => d.name },
        { title: "Description", cell: (d) => d.description },
        { title: "Active", cell: (d) => yesNo(d.isActive) },
        { title: "Created", cell: (d) => when(d.createdAt) },
      ],
      async (pageToken) => {
        const r = await api.domains.listDomains({ pageSize: PAGE_SIZE, pageToken });
        return { rows: r.domains, next: r.nextPageToken };
      },
      onExpired,
    );
    const projects = new PagedTable<Project>(
      "Projects",
      [
        { title: "Name", cell: (p) => p.name },
        { title: "Domain", cell: (p) => p.domainName },
        { title: "Description", cell: (p) => p.description },
        { title: "Active", cell: (p) => yesNo(p.isActive) },
        { title: "Id", cell: (p) => h("code", {}, p.id) },
      ],
      async (pageToken) => {
        const r = await api.projects.listProjects({ pageSize: PAGE_SIZE, pageToken });
        return { rows: r.projects, next: r.nextPageToken };
      },
      onExpired,
    );
    const users = new PagedTable<User>(
      "Users",
      [
        { title: "Username", cell: (u) => u.username },
        { title: "Email", cell: (u) => u.email },
        { title: "Domain", cell: (u) => u.domainName },
        { title: "Role", cell: (u) => role(u.role) },
        { title: "Status", cell: (u) => status(u.status) },
      ],
      async (pageToken) => {
        const r = await api.users.listUsers({ pageSize: PAGE_SIZE, pageToken });
        return { rows: r.users, next: r.nextPageToken };
      },
      onExpired,
    );
    this.tables = [domains, projects, users];
    this.root = h("div", { id: "tables" }, ...this.tables.map((t) => t.root));
  }

  reset(): Promise<unknown> {
    return Promise.all(this.tables.map((t) => t.reset()));
  }
}
