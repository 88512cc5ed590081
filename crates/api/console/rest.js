// The REST API with the session's token: an expired access token is
// refreshed once and the request repeated.

import { failure } from "./session.js";

export class Rest {
  constructor(session) {
    this.session = session;
  }

  get(path) {
    return this.call("GET", path);
  }

  post(path, body) {
    return this.call("POST", path, body ?? {});
  }

  patch(path, body) {
    return this.call("PATCH", path, body);
  }

  delete(path) {
    return this.call("DELETE", path);
  }

  async call(method, path, body) {
    let response = await this.#send(method, path, body, this.session.access);
    if (response.status === 401) {
      const access = await this.session.refresh();
      if (!access) throw failure(401, { error: { message: "signed out" } });
      response = await this.#send(method, path, body, access);
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw failure(response.status, data);
    return data;
  }

  #send(method, path, body, token) {
    // Paths are relative to the console, so it works under any prefix a
    // proxy gives it.
    return fetch(`../${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }
}
