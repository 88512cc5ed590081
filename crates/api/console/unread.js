// The inbox's unread count. The server is the truth: every change seen on
// the socket (a new notification, read, delete, read-all, a reconnect)
// asks it again, so tabs and devices cannot drift apart.

export class Unread extends EventTarget {
  constructor(rest, client) {
    super();
    this.rest = rest;
    this.count = 0;
    this.timer = null;
    for (const type of ["notification", "read", "delete", "read_all", "welcome"]) {
      client.addEventListener(type, () => this.soon());
    }
  }

  /** Asks again shortly, once for a burst of changes. */
  soon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), 100);
  }

  async refresh() {
    try {
      const page = await this.rest.get("api/notifications/?unread=true&page_size=1");
      this.count = page.count;
      this.dispatchEvent(new Event("change"));
    } catch {
      // Offline or signed out: the next change asks again.
    }
  }
}
