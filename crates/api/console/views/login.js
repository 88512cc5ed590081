// The sign-in form.

import { h, fields, problem } from "../dom.js";

export function loginView(session, signedIn) {
  const error = h("div");
  const form = h(
    "form",
    {
      class: "card login",
      onsubmit: async (event) => {
        event.preventDefault();
        const { username, password } = fields(form);
        error.replaceChildren();
        try {
          await session.login(username, password);
          signedIn();
        } catch (failure) {
          error.append(problem(failure));
        }
      },
    },
    h("h1", {}, "Tidings"),
    h("label", {}, "Username", h("input", { name: "username", autocomplete: "username", required: true, autofocus: true })),
    h("label", {}, "Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    error,
    h("button", { type: "submit" }, "Log in"),
  );
  return h("div", { class: "center" }, form);
}
