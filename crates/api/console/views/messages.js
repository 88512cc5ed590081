// A conversation on screen: history read over REST and scrolled back by
// page, live messages from the socket, each shown once and in seq order
// whichever way it arrived.

import { h, when } from "../dom.js";

/** Messages per page of history. */
const PAGE = 30;
/** Larger than any seq: `before` this reads the newest page. */
const NEWEST = Number.MAX_SAFE_INTEGER;

export class MessageList {
  /**
   * @param {string} path the history's REST path, e.g. `api/topics/news/messages/`
   * @param {string} me the signed-in username, whose messages are set apart
   */
  constructor(rest, path, me) {
    this.rest = rest;
    this.path = path;
    this.me = me;
    this.rows = new Map();
    this.before = NEWEST;
    this.list = h("ol", { class: "messages" });
    this.more = h("button", { class: "quiet more", hidden: true, onclick: () => this.earlier() }, "Load earlier messages");
    // Shown once scrolled back to where retention cut the history.
    this.start = h("p", { class: "quiet pruned", hidden: true });
    this.element = h("div", { class: "conversation" }, this.more, this.start, this.list);
    this.list.addEventListener("scroll", () => {
      if (this.list.scrollTop === 0 && !this.more.hidden) this.earlier();
    });
  }

  /** The newest page. Returns the highest seq read (0 when empty). */
  async load() {
    this.before = NEWEST;
    await this.earlier();
    this.list.scrollTop = this.list.scrollHeight;
    return Math.max(0, ...this.rows.keys());
  }

  /** The page before the oldest shown. */
  async earlier() {
    if (this.loading || this.before === null) return;
    this.loading = true;
    try {
      const height = this.list.scrollHeight;
      const page = await this.rest.get(`${this.path}?before=${this.before}&limit=${PAGE}`);
      for (const message of page.results) this.add(message);
      this.before = page.prev_before;
      this.more.hidden = this.before === null;
      this.start.hidden = !(this.before === null && page.first_seq > 1);
      this.start.textContent = `Messages before #${page.first_seq} are no longer kept.`;
      // Keep what the reader was looking at in place.
      this.list.scrollTop += this.list.scrollHeight - height;
    } finally {
      this.loading = false;
    }
  }

  /** Adds a message unless it is shown already, in seq order. */
  add(message) {
    if (this.rows.has(message.seq)) return;
    const stick = this.list.scrollTop + this.list.clientHeight >= this.list.scrollHeight - 8;
    const row = h(
      "li",
      { class: message.from === this.me ? "mine" : "", "data-seq": message.seq },
      h("span", { class: "from" }, message.from),
      h("span", { class: "content" }, message.content),
      h("time", { datetime: message.ts, title: `#${message.seq}` }, when(message.ts)),
    );
    const later = [...this.rows.keys()].filter((seq) => seq > message.seq).sort((a, b) => a - b)[0];
    this.list.insertBefore(row, later === undefined ? null : this.rows.get(later));
    this.rows.set(message.seq, row);
    if (stick) this.list.scrollTop = this.list.scrollHeight;
  }
}

/**
 * The box to write in. `send(content)` resolves with the ack; messages
 * typed quickly are pipelined, and the server keeps their order.
 */
export function composer(send, onSent, placeholder) {
  const input = h("input", { name: "content", placeholder, autocomplete: "off", maxlength: 16384, required: true });
  const note = h("span", { class: "note" });
  const form = h(
    "form",
    {
      class: "composer",
      onsubmit: (event) => {
        event.preventDefault();
        const content = input.value;
        if (!content) return;
        input.value = "";
        note.textContent = "";
        send(content).then(
          (ack) => onSent(ack, content),
          (error) => {
            note.textContent = `Not sent: ${error.message}`;
            if (!input.value) input.value = content;
          },
        );
      },
    },
    input,
    h("button", { type: "submit" }, "Send"),
    note,
  );
  return form;
}
