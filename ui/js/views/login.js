// Asks for the server's token (once: it is kept in this browser until
// "Forget token") and says clearly when the server refuses it.

import { h, fill } from "../dom.js";

export function mount(root, { message, onToken }) {
  const input = h("input#token", { type: "password", autocomplete: "current-password", required: true, "aria-describedby": "login-error" });
  const error = h("p#login-error.error-text", { role: "alert" }, message || "");
  const submit = h("button.primary", { type: "submit" }, "Sign in");
  const form = h("form#login.login", { on: { submit: async (e) => {
    e.preventDefault();
    submit.disabled = true;
    error.textContent = "";
    const err = await onToken(input.value.trim());
    submit.disabled = false;
    if (err) {
      error.textContent = err.status === 401 ? `The server refused this token: ${err.describe()}` : `Cannot reach the server: ${err.describe()}`;
      input.select();
    }
  } } },
    h("h1", "tether"),
    h("p", "This server needs its token (from ", h("code", "--token"), ", ", h("code", "TETHER_TOKEN"), " or the token file)."),
    h("label.field", h("span", "Token"), input), error, submit);
  fill(root, form);
  input.focus();
}
