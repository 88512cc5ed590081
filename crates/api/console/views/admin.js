// Admin screens: users, tags, sending a notification to a tag, the audit log.

import { h, replace, fields, pages, problem, when } from "../dom.js";

const SCREENS = { users, tags, notify, audit };

export function adminView(app, signal, screen = "users") {
  const body = h("div");
  const show = SCREENS[screen] ?? users;
  const tabs = h(
    "div",
    { class: "tabs" },
    Object.keys(SCREENS).map((name) =>
      h("a", { href: `#/admin/${name}`, class: name === screen ? "active" : "" }, name[0].toUpperCase() + name.slice(1)),
    ),
  );
  if (!app.user.is_admin) return h("section", {}, h("p", { class: "problem" }, "Admins only."));
  replace(body, show(app, signal));
  return h("section", {}, h("h2", {}, "Admin"), tabs, body);
}

/** A paged list: `render(result)` draws it, `pager` moves through it. */
function paged(load, render) {
  const target = h("div");
  const pager = h("div", { class: "pager" });
  const error = h("div");
  let page = 1;
  async function refresh() {
    try {
      const result = await load(page);
      replace(target, render(result, refresh));
      pages(pager, page, result.count, result.page_size, (next) => {
        page = next;
        refresh();
      });
      replace(error);
    } catch (failure) {
      replace(error, problem(failure));
    }
  }
  refresh();
  return { element: h("div", {}, error, target, pager), refresh, error };
}

function users(app) {
  const table = paged(
    (page) => app.rest.get(`api/users/?page=${page}&page_size=20`),
    (result, refresh) =>
      h(
        "table",
        { class: "grid users" },
        h("thead", {}, h("tr", {}, ["User", "Role", "State", "Since", ""].map((text) => h("th", {}, text)))),
        h(
          "tbody",
          {},
          result.results.map((user) =>
            h(
              "tr",
              { "data-user": user.username },
              h("td", {}, user.username),
              h("td", {}, user.is_admin ? "admin" : "user"),
              h("td", {}, user.is_active ? "active" : "disabled"),
              h("td", {}, when(user.created_at)),
              h(
                "td",
                { class: "row-actions" },
                user.id === app.user.id
                  ? h("span", { class: "muted" }, "you")
                  : [
                      h(
                        "button",
                        {
                          class: "quiet toggle",
                          onclick: () => change(() => app.rest.patch(`api/users/${user.id}/`, { is_active: !user.is_active })),
                        },
                        user.is_active ? "Disable" : "Enable",
                      ),
                      h(
                        "button",
                        {
                          class: "quiet reset",
                          onclick: () => {
                            const password = prompt(`New password for ${user.username} (at least 8 characters)`);
                            if (password) change(() => app.rest.post(`api/users/${user.id}/password/`, { new: password }), `Password of ${user.username} set`);
                          },
                        },
                        "Reset password",
                      ),
                    ],
              ),
            ),
          ),
        ),
      ),
  );
  async function change(request, done) {
    try {
      await request();
      if (done) app.toast(done);
      table.refresh();
    } catch (failure) {
      replace(table.error, problem(failure));
    }
  }
  const form = h(
    "form",
    {
      class: "inline",
      onsubmit: async (event) => {
        event.preventDefault();
        const { username, password, is_admin } = fields(form);
        await change(() => app.rest.post("api/users/", { username, password, is_admin: is_admin === "on" }), `User ${username} created`);
        form.reset();
      },
    },
    h("input", { name: "username", placeholder: "username", required: true }),
    h("input", { name: "password", type: "password", placeholder: "password", minlength: 8, autocomplete: "new-password", required: true }),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "is_admin" }), " admin"),
    h("button", { type: "submit" }, "Create user"),
  );
  return h("div", {}, form, table.element);
}

function tags(app) {
  const list = h("ul", { class: "topics" });
  const error = h("div");
  async function load() {
    try {
      const tags = await app.rest.get("api/tags/");
      replace(
        list,
        tags.map((tag) =>
          h(
            "li",
            { "data-tag": tag.name },
            h("span", {}, tag.name),
            h("span", { class: "muted" }, ` #${tag.id} `),
            h("button", { class: "quiet", onclick: () => act(() => app.rest.delete(`api/tags/${tag.id}/`)) }, "Delete"),
          ),
        ),
        tags.length === 0 ? h("li", { class: "muted" }, "No tags yet.") : null,
      );
    } catch (failure) {
      replace(error, problem(failure));
    }
  }
  async function act(request) {
    try {
      await request();
      replace(error);
      load();
    } catch (failure) {
      replace(error, problem(failure));
    }
  }
  const form = h(
    "form",
    {
      class: "inline",
      onsubmit: (event) => {
        event.preventDefault();
        const { name } = fields(form);
        act(() => app.rest.post("api/tags/", { name })).then(() => form.reset());
      },
    },
    h("input", { name: "name", placeholder: "new tag", required: true }),
    h("button", { type: "submit" }, "Create tag"),
  );
  load();
  return h("div", {}, form, error, list);
}

function notify(app) {
  const select = h("select", { name: "tag", required: true });
  const error = h("div");
  app.rest.get("api/tags/").then(
    (tags) => replace(select, tags.map((tag) => h("option", { value: tag.id }, tag.name))),
    (failure) => replace(error, problem(failure)),
  );
  const form = h(
    "form",
    {
      class: "stack",
      onsubmit: async (event) => {
        event.preventDefault();
        const { tag, message } = fields(form);
        try {
          await app.rest.post("api/notifications/", { tag: Number(tag), message });
          replace(error);
          app.toast("Notification sent");
          form.reset();
        } catch (failure) {
          replace(error, problem(failure));
        }
      },
    },
    h("label", {}, "Tag", select),
    h("label", {}, "Message", h("textarea", { name: "message", rows: 3, required: true })),
    h("button", { type: "submit" }, "Send to every subscriber"),
  );
  return h("div", {}, h("p", { class: "muted" }, "Everyone subscribed to the tag gets it in their inbox, live if online."), error, form);
}

function audit(app) {
  let filter = { resource: "", actor: "" };
  const holder = h("div");
  const show = () =>
    replace(
      holder,
      paged(
        (page) => {
          const query = new URLSearchParams({ page, page_size: 20 });
          if (filter.resource) query.set("resource", filter.resource);
          if (filter.actor) query.set("actor", filter.actor);
          return app.rest.get(`api/audit/?${query}`);
        },
        (result) =>
          h(
            "table",
            { class: "grid audit" },
            h("thead", {}, h("tr", {}, ["When", "Actor", "Action", "Resource", "Changes"].map((text) => h("th", {}, text)))),
            h(
              "tbody",
              {},
              result.results.map((entry) =>
                h(
                  "tr",
                  {},
                  h("td", {}, when(entry.created_at)),
                  h("td", {}, entry.actor ?? "—"),
                  h("td", {}, entry.action),
                  h("td", {}, `${entry.resource} ${entry.resource_id ?? ""}`),
                  h("td", { class: "changes" }, JSON.stringify(entry.changes)),
                ),
              ),
            ),
          ),
      ).element,
    );
  const form = h(
    "form",
    {
      class: "inline",
      onsubmit: (event) => {
        event.preventDefault();
        filter = fields(form);
        show();
      },
    },
    h("input", { name: "resource", placeholder: "resource (user, topic, …)" }),
    h("input", { name: "actor", placeholder: "actor (username)" }),
    h("button", { type: "submit", class: "quiet" }, "Filter"),
  );
  show();
  return h("div", {}, form, holder);
}
