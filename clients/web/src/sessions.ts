// The Sessions page: the launch form and my sessions, newest first, refreshed on every
// session event from the feed (or every 2 s while the feed is polling). Admins see
// everyone's sessions elsewhere (the API filters by user_id); this page is the caller's.
import { api } from "./api";
import { h } from "./dom";
import type { FeedState, SessionFeed } from "./feed";
import { sessionStatus, sessionType, slots, statusBadge, when } from "./format";
import type { Session } from "./gen/bai/api/manager/v1/session_pb";
import { LaunchForm } from "./launch";
import { PagedTable } from "./table";

const PAGE_SIZE = 20;

function feedLabel(state: FeedState): string {
  return state.mode === "live"
    ? "live: WatchEvents"
    : `polling every 2 s (event stream unavailable: ${state.why})`;
}

export class SessionsPage {
  readonly root: HTMLElement;
  private readonly launch: LaunchForm;
  private readonly table: PagedTable<Session>;
  private readonly feedState = h("span", { id: "sessions-feed", class: "muted" });

  /** `owner()`: the caller's user id from WhoAmI ("" until known: the server's default). */
  constructor(feed: SessionFeed, owner: () => string, onExpired: () => void) {
    this.launch = new LaunchForm(feed, onExpired);
    this.table = new PagedTable<Session>(
      "My sessions",
      [
        { title: "Name", cell: (s) => h("a", { href: `#/sessions/${s.id}`, class: "session-link" }, s.name) },
        { title: "Status", cell: (s) => statusBadge(sessionStatus(s.status)) },
        { title: "Type", cell: (s) => sessionType(s.type) },
        { title: "Image", cell: (s) => h("code", {}, s.image) },
        { title: "Requested", cell: (s) => slots(s.requestedSlots) },
        { title: "Created", cell: (s) => when(s.createdAt) },
      ],
      async (pageToken) => {
        const r = await api.sessions.listSessions({ pageSize: PAGE_SIZE, pageToken, userId: owner() });
        return { rows: r.sessions, next: r.nextPageToken };
      },
      onExpired,
    );
    this.table.root.querySelector("h2")?.append(" ", this.feedState);
    const showState = (state: FeedState): void => {
      this.feedState.dataset.mode = state.mode;
      this.feedState.textContent = feedLabel(state);
    };
    showState(feed.state);
    feed.onState = showState;
    feed.subscribe(() => void this.table.refresh());
    this.root = h("div", { id: "sessions-page" }, this.launch.root, this.table.root);
  }

  reset(): Promise<unknown> {
    return Promise.all([this.launch.load(), this.table.reset()]);
  }
}
