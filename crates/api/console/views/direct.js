// Direct messages: conversations seen on this browser, and one
// conversation with its history and live messages.

import { h, replace, fields, problem } from "../dom.js";
import { MessageList, composer } from "./messages.js";
import { conversations, rememberConversation } from "../conversations.js";

export function directsView(app) {
  const form = h(
    "form",
    {
      class: "inline",
      onsubmit: (event) => {
        event.preventDefault();
        const { username } = fields(form);
        location.hash = `#/direct/${encodeURIComponent(username)}`;
      },
    },
    h("input", { name: "username", placeholder: "username", required: true }),
    h("button", { type: "submit" }, "Open"),
  );
  const known = conversations(app.user.username);
  return h(
    "section",
    {},
    h("h2", {}, "Direct messages"),
    form,
    h(
      "ul",
      { class: "topics" },
      known.map((peer) => h("li", {}, h("a", { href: `#/direct/${encodeURIComponent(peer)}` }, peer))),
      known.length === 0 ? h("li", { class: "muted" }, "No conversations on this browser yet.") : null,
    ),
  );
}

export function directView(app, signal, peer) {
  const label = `@${peer}`;
  const messages = new MessageList(app.rest, `api/direct/${encodeURIComponent(peer)}/messages/`, app.user.username);
  const error = h("div");
  const reload = () =>
    messages
      .load()
      .then((seq) => app.client.seen(label, seq))
      .catch((failure) => replace(error, problem(failure)));
  app.client.addEventListener("message", ({ detail }) => detail.topic === label && messages.add(detail), { signal });
  // Direct history is not replayed over the socket; read what was missed.
  app.client.addEventListener("gap", ({ detail }) => detail.topic === label && reload(), { signal });
  app.client.addEventListener("welcome", reload, { signal });
  reload();
  const write = composer(
    (content) => app.client.publish(label, content),
    (ack, content) => {
      rememberConversation(app.user.username, peer);
      messages.add({ seq: ack.seq, id: ack.id, topic: label, from: app.user.username, content, ts: new Date().toISOString() });
    },
    `Message ${peer}`,
  );
  return h("section", { class: "room" }, h("div", { class: "room-head" }, h("h2", {}, peer)), error, messages.element, write);
}
