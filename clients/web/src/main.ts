// bai web UI: log in, see who you are, browse domains, projects and users.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { api, describeError, isUnauthenticated, token } from "./api";
import { byId, h } from "./dom";
import { UserRole, type WhoAmIResponse } from "./gen/bai/api/manager/v1/auth_pb";
import type { Domain } from "./gen/bai/api/manager/v1/domain_pb";
import type { Project } from "./gen/bai/api/manager/v1/project_pb";
import { UserStatus, type User } from "./gen/bai/api/manager/v1/user_pb";
import { errorBox, PagedTable } from "./table";

const PAGE_SIZE = 20;

const loginView = byId("login-view");
const appView = byId("app-view");
const loginForm = byId<HTMLFormElement>("login-form");
const loginError = byId("login-error");
const whoami = byId("whoami");
const tables = byId("tables");
const logout = byId<HTMLButtonElement>("logout");

const role = (r: UserRole): string => (UserRole[r] ?? String(r)).toLowerCase();
const status = (s: UserStatus): string => (UserStatus[s] ?? String(s)).toLowerCase().replace(/_/g, " ");
const when = (t?: Timestamp): string => (t ? timestampDate(t).toISOString().slice(0, 16).replace("T", " ") : "");
const yesNo = (b: boolean): string => (b ? "yes" : "no");

function showLogin(): void {
  appView.hidden = logout.hidden = true;
  whoami.replaceChildren();
  loginView.hidden = false;
  byId<HTMLInputElement>("username").focus();
}

function expire(): void {
  // The token was refused (expired or revoked): back to the login form.
  token.clear();
  loginError.replaceChildren(h("div", { class: "error" }, "Your session has ended; please log in again."));
  showLogin();
}

const domainTable = new PagedTable<Domain>(
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
  expire,
);

const projectTable = new PagedTable<Project>(
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
  expire,
);

const userTable = new PagedTable<User>(
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
  expire,
);

tables.replaceChildren(domainTable.root, projectTable.root, userTable.root);

function renderIdentity(me: WhoAmIResponse): void {
  whoami.replaceChildren(
    h("span", { class: "user", id: "whoami-user" }, me.username),
    h("span", { class: "badge", id: "whoami-role" }, role(me.role)),
    h("span", { class: "domain", id: "whoami-domain" }, `domain ${me.domainName}`),
  );
}

/** With a token in sessionStorage: fetch WhoAmI and the tables. */
async function enter(): Promise<void> {
  loginView.hidden = true;
  appView.hidden = logout.hidden = false;
  whoami.replaceChildren(h("span", { class: "muted" }, "…"));
  try {
    renderIdentity(await api.auth.whoAmI({}));
  } catch (err) {
    if (isUnauthenticated(err)) return expire();
    whoami.replaceChildren(errorBox(describeError(err)));
  }
  await Promise.all([domainTable.reset(), projectTable.reset(), userTable.reset()]);
}

loginForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const data = new FormData(loginForm);
  const submit = loginForm.querySelector("button")!;
  submit.disabled = true;
  loginError.replaceChildren();
  try {
    const r = await api.auth.login({
      username: String(data.get("username") ?? ""),
      password: String(data.get("password") ?? ""),
    });
    token.set(r.token);
    loginForm.reset();
    await enter();
  } catch (err) {
    loginError.replaceChildren(errorBox(describeError(err)));
  } finally {
    submit.disabled = false;
  }
});

logout.addEventListener("click", async () => {
  try {
    await api.auth.logout({}); // revoke the token server-side; ignore failures
  } catch {
    /* the token may already be invalid */
  }
  token.clear();
  loginError.replaceChildren();
  showLogin();
});

if (token.get()) void enter();
else showLogin();
