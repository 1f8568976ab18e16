// bai web UI: log in, see who you are, run sessions; admins also browse domains,
// projects and users. Pages by location.hash: #/sessions, #/sessions/<id>, #/images,
// #/folders, #/admin.
import { AdminPage, role } from "./admin";
import { api, describeError, isUnauthenticated, token } from "./api";
import { byId, h } from "./dom";
import { SessionFeed } from "./feed";
import { FoldersPage } from "./folders";
import { UserRole, type WhoAmIResponse } from "./gen/bai/api/manager/v1/auth_pb";
import { ImagesPage } from "./images";
import { SessionView } from "./session_view";
import { SessionsPage } from "./sessions";
import { errorBox } from "./table";

const loginView = byId("login-view");
const appView = byId("app-view");
const loginForm = byId<HTMLFormElement>("login-form");
const loginError = byId("login-error");
const whoami = byId("whoami");
const nav = byId("nav");
const navAdmin = byId("nav-admin");
const page = byId("page");
const logout = byId<HTMLButtonElement>("logout");

let me: WhoAmIResponse | null = null;
const feed = new SessionFeed(expire);
const sessionsPage = new SessionsPage(feed, () => me?.userId ?? "", expire);
const sessionView = new SessionView(feed, expire);
const imagesPage = new ImagesPage(expire);
const foldersPage = new FoldersPage(expire);
const adminPage = new AdminPage(expire);
const loaded = new Set<HTMLElement>(); // pages fetched since login; later visits keep their state

function leave(): void {
  me = null;
  feed.stop();
  sessionView.close();
  loaded.clear();
}

function showLogin(): void {
  leave();
  appView.hidden = logout.hidden = nav.hidden = true;
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

function show(tab: string, root: HTMLElement, load?: () => unknown): void {
  for (const a of nav.querySelectorAll("a")) a.classList.toggle("active", a.id === `nav-${tab}`);
  if (page.firstChild !== root) page.replaceChildren(root);
  if (load && !loaded.has(root)) {
    loaded.add(root);
    void load();
  }
}

function route(): void {
  if (appView.hidden) return;
  const one = /^#\/sessions\/([^/?]+)$/.exec(location.hash);
  if (one) {
    show("sessions", sessionView.root);
    sessionView.open(decodeURIComponent(one[1]));
    return;
  }
  sessionView.close();
  if (location.hash === "#/admin") show("admin", adminPage.root, () => adminPage.reset());
  else if (location.hash === "#/images") show("images", imagesPage.root, () => imagesPage.reset());
  else if (location.hash === "#/folders") show("folders", foldersPage.root, () => foldersPage.reset());
  else show("sessions", sessionsPage.root, () => sessionsPage.reset());
}

function renderIdentity(me: WhoAmIResponse): void {
  navAdmin.hidden = me.role === UserRole.USER;
  whoami.replaceChildren(
    h("span", { class: "user", id: "whoami-user" }, me.username),
    h("span", { class: "badge", id: "whoami-role" }, role(me.role)),
    h("span", { class: "domain", id: "whoami-domain" }, `domain ${me.domainName}`),
  );
}

/** With a token in sessionStorage: fetch WhoAmI, start the event feed, show the page. */
async function enter(): Promise<void> {
  loginView.hidden = true;
  appView.hidden = logout.hidden = nav.hidden = false;
  whoami.replaceChildren(h("span", { class: "muted" }, "…"));
  loaded.clear();
  try {
    me = await api.auth.whoAmI({});
    renderIdentity(me);
  } catch (err) {
    if (isUnauthenticated(err)) return expire();
    whoami.replaceChildren(errorBox(describeError(err)));
  }
  feed.start();
  route();
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
  leave();
  try {
    await api.auth.logout({}); // revoke the token server-side; ignore failures
  } catch {
    /* the token may already be invalid */
  }
  token.clear();
  loginError.replaceChildren();
  showLogin();
});

window.addEventListener("hashchange", route);

if (token.get()) void enter();
else showLogin();
