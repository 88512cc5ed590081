// The notification inbox: newest first, paged, with live arrivals and the
// read, delete and read-all state every tab and device shares.

import { h, replace, pages, problem, when } from "../dom.js";

const PAGE_SIZE = 20;

export function inboxView(app, signal) {
  const list = h("ul", { class: "inbox" });
  const pager = h("div", { class: "pager" });
  const error = h("div");
  const items = new Map();
  let page = 1;
  let tags = new Map();
  // Live changes that arrived while a page was on its way: the page may
  // predate them, so they are applied again on top of it once it lands.
  let pending = null;

  function row(item) {
    const element = h(
      "li",
      { class: item.is_read ? "read" : "unread", "data-id": item.id },
      h("span", { class: "tag" }, tags.get(item.notification.tag) ?? `tag ${item.notification.tag}`),
      h("span", { class: "content" }, item.notification.message),
      h("time", { datetime: item.notification.timestamp }, when(item.notification.timestamp)),
      h("button", { class: "quiet mark", disabled: item.is_read, onclick: () => act(() => app.client.markRead(item.id)) }, "Mark read"),
      h("button", { class: "quiet remove", onclick: () => act(() => app.client.delete(item.id)) }, "Delete"),
    );
    items.set(item.id, element);
    return element;
  }

  function markRead(id) {
    const element = items.get(id);
    if (!element) return;
    element.className = "read";
    element.querySelector(".mark").disabled = true;
  }

  async function act(request) {
    try {
      await request();
    } catch (failure) {
      replace(error, problem(failure));
    }
  }

  async function load() {
    const mine = (pending = []);
    try {
      if (tags.size === 0) {
        const list = await app.rest.get("api/tags/");
        tags = new Map(list.map((tag) => [tag.id, tag.name]));
      }
      const result = await app.rest.get(`api/notifications/?page=${page}&page_size=${PAGE_SIZE}`);
      // A later load is under way: its page was asked for after these
      // changes arrived, so it holds them.
      if (pending !== mine) return;
      pending = null;
      items.clear();
      replace(list, result.results.map(row), result.count === 0 ? h("li", { class: "muted empty" }, "Nothing here.") : null);
      for (const apply of mine) apply();
      const go = (next) => {
        page = next;
        load();
      };
      pages(pager, page, result.count, PAGE_SIZE, go, ["Newer", "Older"]);
    } catch (failure) {
      if (pending === mine) pending = null;
      replace(error, problem(failure));
    }
  }

  const on = (type, handler) =>
    app.client.addEventListener(
      type,
      ({ detail }) => (pending ? pending.push(() => handler(detail)) : handler(detail)),
      { signal },
    );
  on("notification", (item) => {
    if (page !== 1 || items.has(item.id)) return;
    list.querySelector(".empty")?.remove();
    list.prepend(row(item));
  });
  on("read", ({ id }) => markRead(id));
  on("delete", ({ id }) => {
    items.get(id)?.remove();
    items.delete(id);
  });
  on("read_all", ({ up_to }) => {
    for (const id of items.keys()) if (id <= up_to) markRead(id);
  });
  // Back after an absence: the page may have changed meanwhile.
  app.client.addEventListener("welcome", () => load(), { signal });

  const unread = h("span", { class: "muted" });
  const count = () => (unread.textContent = `${app.unread.count} unread`);
  app.unread.addEventListener("change", count, { signal });
  count();
  load();
  return h(
    "section",
    {},
    h(
      "div",
      { class: "room-head" },
      h("h2", {}, "Inbox"),
      unread,
      h("button", { class: "quiet", id: "read-all", onclick: () => act(() => app.rest.post("api/notifications/read-all/")) }, "Mark all read"),
    ),
    error,
    list,
    pager,
  );
}
