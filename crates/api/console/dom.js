// A few DOM helpers. Text always goes in as text nodes, never as HTML, so
// whatever users write cannot become markup.

/** `h("button", {class: "x", onclick}, "text", child)`: an element. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces everything inside `element` with `children`. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** "09:30" today, "26 Nov 09:30" otherwise, in the reader's time zone. */
export function when(timestamp) {
  const date = new Date(timestamp);
  const sameDay = date.toDateString() === new Date().toDateString();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return sameDay ? time : `${date.toLocaleDateString([], { day: "numeric", month: "short" })} ${time}`;
}

/** A form's fields by name. */
export function fields(form) {
  return Object.fromEntries(new FormData(form).entries());
}

/** A line that says what went wrong, for a failed request. */
export function problem(error) {
  return h("p", { class: "problem", role: "alert" }, error?.message ?? String(error));
}

/**
 * Fills `element` with "previous · page N of M · next" for a paged list;
 * `go(page)` loads another page.
 */
export function pages(element, page, count, size, go, labels = ["Previous", "Next"]) {
  const last = Math.max(1, Math.ceil(count / size));
  return replace(
    element,
    h("button", { class: "quiet", disabled: page <= 1, onclick: () => go(page - 1) }, labels[0]),
    h("span", {}, ` page ${page} of ${last} `),
    h("button", { class: "quiet", disabled: page >= last, onclick: () => go(page + 1) }, labels[1]),
  );
}
