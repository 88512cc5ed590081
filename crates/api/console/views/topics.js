// Topics: the list, creating one, and one topic's conversation with
// joining, leaving, inviting and publishing.

import { h, replace, fields, pages, problem, when } from "../dom.js";
import { MessageList, composer } from "./messages.js";

const PAGE_SIZE = 50;

export function topicsView(app, signal) {
  const list = h("ul", { class: "topics" });
  const pager = h("div", { class: "pager" });
  const error = h("div");
  let page = 1;

  async function load() {
    try {
      const result = await app.rest.get(`api/topics/?page=${page}&page_size=${PAGE_SIZE}`);
      replace(
        list,
        result.results.map((topic) =>
          h(
            "li",
            {},
            h("a", { href: `#/topics/${encodeURIComponent(topic.name)}` }, topic.name),
            topic.private ? h("span", { class: "tag" }, "private") : null,
            h("span", { class: "muted" }, ` by ${topic.owner ?? "—"}, ${when(topic.created_at)}`),
          ),
        ),
        result.count === 0 ? h("li", { class: "muted" }, "No topics yet: create the first.") : null,
      );
      pages(pager, page, result.count, PAGE_SIZE, (next) => {
        page = next;
        load();
      });
    } catch (failure) {
      replace(error, problem(failure));
    }
  }

  const form = h(
    "form",
    {
      class: "inline",
      onsubmit: async (event) => {
        event.preventDefault();
        const { name, private: secret } = fields(form);
        try {
          await app.rest.post("api/topics/", { name, private: secret === "on" });
          location.hash = `#/topics/${encodeURIComponent(name)}`;
        } catch (failure) {
          replace(error, problem(failure));
        }
      },
    },
    h("input", { name: "name", placeholder: "new topic name", pattern: "[A-Za-z0-9_.\\-]{1,64}", required: true }),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "private" }), " private"),
    h("button", { type: "submit" }, "Create"),
  );
  load();
  return h("section", {}, h("h2", {}, "Topics"), form, error, list, pager);
}

export function topicView(app, signal, name) {
  const messages = new MessageList(app.rest, `api/topics/${encodeURIComponent(name)}/messages/`, app.user.username);
  const error = h("div");
  const actions = h("div", { class: "actions" });
  const extra = h("div");
  const title = h("h2", {}, name);

  app.client.addEventListener(
    "message",
    ({ detail }) => {
      if (detail.topic === name) messages.add(detail);
    },
    { signal },
  );
  // After a reconnect, history may have moved on while the socket was away.
  app.client.addEventListener("welcome", () => messages.load().then((seq) => app.client.seen(name, seq)), { signal });

  function membership(member, topic) {
    replace(
      actions,
      member
        ? h("button", { class: "quiet", onclick: () => leave() }, "Leave")
        : topic.private
          ? h("span", { class: "muted" }, "Private: members only")
          : h("button", { onclick: () => join() }, "Join"),
    );
  }

  async function join() {
    try {
      await app.client.subscribe(name);
      membership(true, {});
    } catch (failure) {
      replace(error, problem(failure));
    }
  }

  async function leave() {
    try {
      await app.client.unsubscribe(name);
      membership(false, topic);
    } catch (failure) {
      replace(error, problem(failure));
    }
  }

  let topic = {};
  (async () => {
    try {
      topic = await app.rest.get(`api/topics/${encodeURIComponent(name)}/`);
      title.append(topic.private ? h("span", { class: "tag" }, "private") : "");
      const members = await app.rest.get(`api/topics/${encodeURIComponent(name)}/members/`).catch(() => []);
      const member = members.some((m) => m.username === app.user.username);
      membership(member, topic);
      if (member) app.client.subscribe(name).catch(() => {});
      if (topic.private && member) replace(extra, inviteForm(app, name, error));
      const seq = await messages.load();
      app.client.seen(name, seq);
    } catch (failure) {
      replace(error, problem(failure));
    }
  })();

  const write = composer(
    (content) => app.client.publish(name, content),
    (ack, content) =>
      messages.add({ seq: ack.seq, id: ack.id, topic: name, from: app.user.username, content, ts: new Date().toISOString() }),
    `Message ${name}`,
  );
  return h("section", { class: "room" }, h("div", { class: "room-head" }, title, actions), extra, error, messages.element, write);
}

function inviteForm(app, topic, error) {
  const form = h(
    "form",
    {
      class: "inline",
      onsubmit: async (event) => {
        event.preventDefault();
        const { username } = fields(form);
        try {
          await app.client.invite(topic, username);
          form.reset();
          app.toast(`${username} invited to ${topic}`);
        } catch (failure) {
          replace(error, problem(failure));
        }
      },
    },
    h("input", { name: "username", placeholder: "invite a user", required: true }),
    h("button", { type: "submit", class: "quiet" }, "Invite"),
  );
  return form;
}
