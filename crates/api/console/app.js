// The Tidings console: signs in, keeps one socket per tab through
// tidings.js, and routes `#/…` to the views.

import { Tidings, socketUrl } from "../tidings.js";
import { Session } from "./session.js";
import { Rest } from "./rest.js";
import { Unread } from "./unread.js";
import { h, replace } from "./dom.js";
import { loginView } from "./views/login.js";
import { topicsView, topicView } from "./views/topics.js";
import { directsView, directView } from "./views/direct.js";
import { inboxView } from "./views/inbox.js";
import { adminView } from "./views/admin.js";
import { rememberConversation } from "./conversations.js";

const root = document.getElementById("app");
const session = new Session();

/** Path patterns and their views; the first match wins. */
const ROUTES = [
  [/^\/topics\/([^/]+)$/, topicView],
  [/^\/topics$/, topicsView],
  [/^\/direct\/([^/]+)$/, directView],
  [/^\/direct$/, directsView],
  [/^\/inbox$/, inboxView],
  [/^\/admin(?:\/([a-z]+))?$/, adminView],
];

const STATE_LABELS = {
  connecting: "Connecting…",
  open: "Live",
  waiting: "Reconnecting…",
  closed: "Offline",
  signed_out: "Signed out",
};

class Console {
  constructor(settings) {
    this.session = session;
    this.user = session.user;
    this.rest = new Rest(session);
    this.client = new Tidings({
      url: socketUrl(settings.socket),
      token: () => session.access,
      refresh: () => session.refresh(),
    });
    this.unread = new Unread(this.rest, this.client);
    this.view = null;
    this.onRoute = () => this.route();
  }

  start() {
    const status = h("span", { class: "status", "data-state": "connecting", role: "status" }, "Connecting…");
    this.client.addEventListener("state", ({ detail }) => {
      status.dataset.state = detail.state;
      status.textContent = STATE_LABELS[detail.state] ?? detail.state;
    });
    this.client.addEventListener("signed_out", () => session.end());
    this.client.addEventListener("message", ({ detail }) => this.#noticeDirect(detail));
    const badge = h("span", { class: "badge", id: "unread", hidden: true }, "0");
    this.unread.addEventListener("change", () => {
      badge.textContent = String(this.unread.count);
      badge.hidden = this.unread.count === 0;
    });
    this.main = h("main", { id: "view" });
    this.toasts = h("div", { class: "toasts", "aria-live": "polite" });
    const link = (path, label, ...extra) => h("a", { href: `#${path}`, "data-path": path }, label, ...extra);
    this.nav = h(
      "nav",
      {},
      link("/topics", "Topics"),
      link("/direct", "Direct"),
      link("/inbox", "Inbox ", badge),
      this.user.is_admin ? link("/admin", "Admin") : null,
    );
    replace(
      root,
      h(
        "header",
        {},
        h("a", { class: "brand", href: "#/topics" }, "Tidings"),
        status,
        h("span", { class: "who" }, this.user.username, this.user.is_admin ? " (admin)" : ""),
        h("button", { class: "quiet", id: "logout", onclick: () => session.logout() }, "Log out"),
      ),
      h("div", { class: "body" }, this.nav, this.main),
      this.toasts,
    );
    globalThis.addEventListener("hashchange", this.onRoute);
    this.client.connect();
    this.unread.refresh();
    this.route();
  }

  stop() {
    globalThis.removeEventListener("hashchange", this.onRoute);
    this.view?.abort();
    this.client.close();
  }

  route() {
    const path = location.hash.replace(/^#/, "") || "/topics";
    this.view?.abort();
    this.view = new AbortController();
    for (const link of this.nav.querySelectorAll("a")) {
      link.classList.toggle("active", path.startsWith(link.dataset.path));
    }
    for (const [pattern, view] of ROUTES) {
      const match = path.match(pattern);
      if (!match) continue;
      const params = match.slice(1).map((part) => (part === undefined ? undefined : decodeURIComponent(part)));
      replace(this.main, view(this, this.view.signal, ...params));
      return;
    }
    location.hash = "#/topics";
  }

  /** A short note in the corner that goes away by itself. */
  toast(text) {
    const note = h("div", { class: "toast" }, text);
    this.toasts.append(note);
    setTimeout(() => note.remove(), 5000);
  }

  /** A direct message for a conversation not on screen gets a note. */
  #noticeDirect(message) {
    if (!message.topic.startsWith("@")) return;
    const peer = message.topic.slice(1);
    rememberConversation(this.user.username, peer);
    if (location.hash !== `#/direct/${encodeURIComponent(peer)}`) this.toast(`${peer}: ${message.content}`);
  }
}

let current = null;

async function boot() {
  let settings;
  try {
    settings = await fetch("settings.json").then((response) => response.json());
  } catch {
    settings = { socket: "/ws" };
  }
  const show = () => {
    current?.stop();
    current = null;
    if (session.user) {
      current = new Console(settings);
      current.start();
    } else {
      replace(root, loginView(session, show));
    }
  };
  session.addEventListener("signed_out", show);
  show();
}

boot();
