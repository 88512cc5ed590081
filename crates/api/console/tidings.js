// tidings.js: a browser client for Tidings. A plain ES module with no
// dependencies; docs/client.md describes it.
//
//   import { Tidings } from "/tidings.js";
//   const client = new Tidings({ url: "ws://localhost:5000/ws", token: () => access });
//   client.addEventListener("message", (event) => show(event.detail));
//   client.connect();
//   await client.subscribe("news");
//   await client.publish("news", "hello");

/** Close codes the server uses (PROTOCOL.md). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  TOO_BIG: 1009,
  TOKEN_EXPIRED: 4001,
  REVOKED: 4003,
  SLOW_CONSUMER: 4008,
});

/** A request the server refused (`{"type":"error"}`), or one that never got an answer. */
export class TidingsError extends Error {
  constructor(code, message, frame) {
    super(message);
    this.name = "TidingsError";
    this.code = code;
    this.frame = frame;
  }
}

const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;
/** A token this close to its `exp` is refreshed before a handshake. */
const EXPIRY_MARGIN_S = 30;
/** Handshakes that fail before opening, in a row, before the token is refreshed anyway. */
const FAILED_OPENS_BEFORE_REFRESH = 2;
/** How long messages ahead of a gap wait for it to be replayed. */
const GAP_WAIT_MS = 5_000;
/** How many notification ids are remembered to drop repeats. */
const SEEN_NOTIFICATIONS = 1000;

/**
 * One socket, kept open: reconnects with backoff and jitter, resumes each
 * topic from the last `seq` it saw, drops repeats, refreshes an expired
 * token, and matches replies to requests by `ref`.
 *
 * Events (`addEventListener`), each with the frame as `event.detail`:
 * `message`, `notification`, `read`, `delete`, `read_all`, `invited`,
 * `welcome`, `gap` (`{topic, after, before}`: seqs in between could not
 * be had over the socket), `pruned` (`{topic, from, to}`: retention
 * removed those seqs before this client got them), `error` (a server error not tied to a request), `state`
 * (`{state}`: `connecting`, `open`, `waiting`, `closed`, `signed_out`)
 * and `signed_out` (the credential was revoked, 4003: do not reconnect).
 */
export class Tidings extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.url the socket's URL, e.g. `ws://localhost:5000/ws`
   * @param {() => string | Promise<string>} options.token the access token (or API key) to connect with
   * @param {() => Promise<string | null>} [options.refresh] a fresh access token, or null when that
   *   is impossible (then the client signs out); called on 4001 and before a handshake with a token near its expiry
   */
  constructor({ url, token, refresh }) {
    super();
    this.url = url;
    this.tokenSource = token;
    this.refreshToken = refresh ?? (async () => null);
    this.state = "closed";
    this.socket = null;
    this.session = null;
    this.nextRef = 1;
    /** ref -> {resolve, reject, frame}: sent, waiting for the reply. */
    this.pending = new Map();
    /** Requests made while the socket was not open, sent once it is. */
    this.outbox = [];
    /** topic -> last seq seen; `@user` keys hold direct conversations. */
    this.lastSeq = new Map();
    /** Topics this client subscribed to, resubscribed with `since` on reconnect. */
    this.topics = new Set();
    this.seenNotifications = new Set();
    /** topic -> Map(seq -> frame): arrived ahead of a gap, waiting for it to fill. */
    this.held = new Map();
    /** topic -> timer that gives up waiting for a gap to fill. */
    this.gapTimers = new Map();
    this.attempt = 0;
    this.failedOpens = 0;
    this.timer = null;
    this.wanted = false;
    this.onOnline = () => {
      if (this.state === "waiting") this.#reconnectNow();
    };
  }

  /** Opens the socket and keeps it open until `close()` or a revoked credential. */
  connect() {
    if (this.wanted) return;
    this.wanted = true;
    globalThis.addEventListener?.("online", this.onOnline);
    this.#open();
  }

  /** Says goodbye (close 1000) and stops reconnecting; waiting requests fail. */
  close() {
    this.wanted = false;
    globalThis.removeEventListener?.("online", this.onOnline);
    clearTimeout(this.timer);
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.close(CloseCode.NORMAL, "bye");
      this.socket = null;
    }
    this.#failPending("closed", "the client was closed");
    this.#failOutbox("closed", "the client was closed");
    this.#setState("closed");
  }

  /**
   * Sends `frame` with a fresh `ref` and resolves with the server's reply
   * (rejects with a TidingsError on an `error` reply). Frames sent while
   * disconnected wait and go out, in order, once the socket is open again.
   */
  request(frame) {
    const ref = this.nextRef++;
    const sent = { ...frame, ref };
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject, frame: sent };
      if (this.state === "open") this.#send(entry);
      else this.outbox.push(entry);
    });
  }

  /**
   * Joins a topic (durable) and resolves with `{type:"subscribed",topic,seq}`.
   * After a reconnect the client subscribes again with `since` set to the
   * last `seq` it saw, so nothing published meanwhile is missed.
   */
  subscribe(topic, since) {
    this.topics.add(topic);
    if (since !== undefined && !this.lastSeq.has(topic)) this.lastSeq.set(topic, since);
    const frame = { action: "subscribe", topic_name: topic };
    const last = this.lastSeq.get(topic);
    if (last !== undefined) frame.since = last;
    return this.request(frame);
  }

  unsubscribe(topic) {
    this.topics.delete(topic);
    return this.request({ action: "unsubscribe", topic_name: topic });
  }

  /**
   * Publishes to a topic, or to a user as a direct message (`@name`).
   * Resolves with the `ack` (`{id, topic, seq}`) once it is stored.
   * Publishes may be pipelined: the server keeps the order they were made in.
   */
  publish(topic, content) {
    return this.request({ action: "message", topic_name: topic, content });
  }

  invite(topic, username) {
    return this.request({ action: "invite", topic_name: topic, username });
  }

  markRead(id) {
    return this.request({ action: "mark_read", id });
  }

  delete(id) {
    return this.request({ action: "delete", id });
  }

  notifications(page = 1, pageSize = 20) {
    return this.request({ action: "notifications_list", page, page_size: pageSize });
  }

  /**
   * Tells the client the history of `topic` has been read up to `seq`
   * (from REST), so pushes at or below it are dropped as repeats.
   */
  seen(topic, seq) {
    if (seq > (this.lastSeq.get(topic) ?? -1)) this.lastSeq.set(topic, seq);
    this.#drain(topic);
  }

  async #open() {
    clearTimeout(this.timer);
    this.#setState("connecting");
    let token;
    try {
      token = await this.#usableToken();
    } catch (error) {
      this.#retry();
      return;
    }
    if (!this.wanted) return;
    if (token === null) {
      this.#signOut("no valid token");
      return;
    }
    const url = new URL(this.url);
    url.searchParams.set("token", token);
    let socket;
    try {
      socket = new WebSocket(url);
    } catch (error) {
      this.#retry();
      return;
    }
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
    };
    socket.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === "welcome") {
        this.failedOpens = 0;
        this.attempt = 0;
        this.session = frame.session;
        this.#setState("open");
        this.#emit("welcome", frame);
        this.#resume();
        return;
      }
      this.#dispatch(frame);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (!opened) this.failedOpens += 1;
      this.#closed(event.code, event.reason);
    };
  }

  /** The token to connect with, refreshed first when it is (nearly) expired. */
  async #usableToken() {
    let token = await this.tokenSource();
    const refreshNeeded =
      !token ||
      expiresWithin(token, EXPIRY_MARGIN_S) ||
      this.failedOpens >= FAILED_OPENS_BEFORE_REFRESH;
    if (refreshNeeded) {
      const fresh = await this.refreshToken();
      if (fresh) {
        this.failedOpens = 0;
        return fresh;
      }
      // No refresh possible: a token that is merely suspect gets another try.
      if (!token || expiresWithin(token, 0)) return null;
    }
    return token;
  }

  /** After `welcome`: subscribe again with `since`, then send what waited. */
  #resume() {
    for (const topic of this.topics) {
      const frame = { action: "subscribe", topic_name: topic, ref: this.nextRef++ };
      const last = this.lastSeq.get(topic);
      if (last !== undefined) frame.since = last;
      this.#send({ resolve() {}, reject() {}, frame });
    }
    const waiting = this.outbox;
    this.outbox = [];
    for (const entry of waiting) {
      // Resubscriptions above already cover a queued subscribe.
      this.#send(entry);
    }
  }

  #send(entry) {
    this.pending.set(entry.frame.ref, entry);
    this.socket.send(JSON.stringify(entry.frame));
  }

  #dispatch(frame) {
    const ref = frame.ref;
    if (ref !== undefined && this.pending.has(ref)) {
      const entry = this.pending.get(ref);
      this.pending.delete(ref);
      if (frame.type === "error") {
        entry.reject(new TidingsError(frame.code, frame.message, frame));
      } else {
        if (frame.type === "ack") this.seen(frame.topic, frame.seq);
        entry.resolve(frame);
      }
      return;
    }
    switch (frame.type) {
      case "message":
        this.#onMessage(frame);
        return;
      case "pruned": {
        // The server will never send these seqs: what follows starts
        // after `to`, so nothing waits for them.
        const last = this.lastSeq.get(frame.topic);
        if (last !== undefined && frame.to <= last) return;
        this.lastSeq.set(frame.topic, frame.to);
        this.#emit("pruned", frame);
        this.#drain(frame.topic);
        return;
      }
      case "notification": {
        if (this.seenNotifications.has(frame.id)) return;
        this.seenNotifications.add(frame.id);
        if (this.seenNotifications.size > SEEN_NOTIFICATIONS) {
          const oldest = this.seenNotifications.values().next().value;
          this.seenNotifications.delete(oldest);
        }
        this.#emit("notification", frame);
        return;
      }
      case "invited":
        this.topics.add(frame.topic);
        this.#emit("invited", frame);
        return;
      case "read":
      case "delete":
      case "read_all":
        this.#emit(frame.type, frame);
        return;
      case "error":
        this.#emit("error", frame);
        return;
      default:
        this.#emit(frame.type, frame);
    }
  }

  /**
   * In order, once each: a repeat (seq at or below the last seen) is
   * dropped; a message ahead of a gap waits while the gap is replayed
   * (`subscribe` with `since`), which happens when another tab or device
   * of the same user moved the server's delivery position past this one.
   */
  #onMessage(frame) {
    const topic = frame.topic;
    const last = this.lastSeq.get(topic);
    if (last === undefined || frame.seq === last + 1) {
      this.lastSeq.set(topic, frame.seq);
      this.#emit("message", frame);
      this.#drain(topic);
      return;
    }
    if (frame.seq <= last) return;
    if (topic.startsWith("@")) {
      // Direct history is not replayed over the socket: deliver, and tell
      // the application, which may read the gap over REST.
      this.lastSeq.set(topic, frame.seq);
      this.#emit("gap", { topic, after: last, before: frame.seq });
      this.#emit("message", frame);
      return;
    }
    if (!this.held.has(topic)) this.held.set(topic, new Map());
    this.held.get(topic).set(frame.seq, frame);
    if (!this.gapTimers.has(topic)) {
      this.request({ action: "subscribe", topic_name: topic, since: last }).catch(() => {});
      this.gapTimers.set(
        topic,
        setTimeout(() => this.#giveUp(topic), GAP_WAIT_MS),
      );
    }
  }

  /** Emits held messages that are now next in line. */
  #drain(topic) {
    const held = this.held.get(topic);
    if (!held) return;
    for (;;) {
      const last = this.lastSeq.get(topic);
      for (const seq of held.keys()) if (seq <= last) held.delete(seq);
      const next = held.get(last + 1);
      if (!next) break;
      held.delete(last + 1);
      this.lastSeq.set(topic, next.seq);
      this.#emit("message", next);
    }
    if (held.size === 0) {
      this.held.delete(topic);
      clearTimeout(this.gapTimers.get(topic));
      this.gapTimers.delete(topic);
    }
  }

  /** The gap did not fill in time (history pruned, say): deliver what is held, in order. */
  #giveUp(topic) {
    this.gapTimers.delete(topic);
    const held = this.held.get(topic);
    if (!held) return;
    this.held.delete(topic);
    for (const seq of [...held.keys()].sort((a, b) => a - b)) {
      const last = this.lastSeq.get(topic);
      if (seq <= last) continue;
      if (seq > last + 1) this.#emit("gap", { topic, after: last, before: seq });
      this.lastSeq.set(topic, seq);
      this.#emit("message", held.get(seq));
    }
  }

  async #closed(code, reason) {
    // Sent and unanswered: stored or not, nobody can tell; the caller decides.
    this.#failPending("connection_lost", "the connection closed before the server answered");
    if (!this.wanted) return;
    if (code === CloseCode.REVOKED) {
      this.#signOut(reason || "credential revoked");
      return;
    }
    if (code === CloseCode.TOKEN_EXPIRED) {
      this.failedOpens = FAILED_OPENS_BEFORE_REFRESH; // refresh before the next handshake
      this.#open();
      return;
    }
    if (code === CloseCode.SLOW_CONSUMER) {
      // Nothing is lost; reconnect at once.
      this.#open();
      return;
    }
    this.#retry();
  }

  #retry() {
    if (!this.wanted) return;
    this.#setState("waiting");
    // Exponential backoff with full jitter, so a restarted server is not
    // met by every client at the same instant.
    const cap = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** this.attempt);
    this.attempt += 1;
    const delay = MIN_DELAY_MS / 2 + Math.random() * cap;
    this.timer = setTimeout(() => this.#open(), delay);
  }

  #reconnectNow() {
    clearTimeout(this.timer);
    this.#open();
  }

  #signOut(reason) {
    this.wanted = false;
    clearTimeout(this.timer);
    this.#failOutbox("signed_out", reason);
    this.#setState("signed_out");
    this.#emit("signed_out", { reason });
  }

  #failPending(code, message) {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const entry of pending) entry.reject(new TidingsError(code, message, entry.frame));
  }

  #failOutbox(code, message) {
    const waiting = this.outbox;
    this.outbox = [];
    for (const entry of waiting) entry.reject(new TidingsError(code, message, entry.frame));
  }

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.#emit("state", { state });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/**
 * Whether a JWT expires within `seconds`. API keys (`tdk_…`) and anything
 * else that is not a JWT never do, as far as the client can tell.
 */
export function expiresWithin(token, seconds) {
  const exp = claims(token)?.exp;
  return typeof exp === "number" && exp - seconds <= Date.now() / 1000;
}

/** The claims of a JWT (unverified: only for reading `exp` and `sub`), or null. */
export function claims(token) {
  const parts = String(token).split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "="));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

/**
 * The socket URL for a page at `location`, from the server's setting:
 * an absolute `ws(s)://` URL, a path on the page's origin (`/ws`), or
 * `:PORT/PATH` on the page's host name.
 */
export function socketUrl(setting, location = globalThis.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  if (/^wss?:\/\//.test(setting)) return setting;
  if (setting.startsWith(":")) return `${scheme}//${location.hostname}${setting}`;
  return `${scheme}//${location.host}${setting.startsWith("/") ? "" : "/"}${setting}`;
}
