// Asks for the server's token, shown only when the server answered 401 (it
// is kept in this browser until "Forget token") and says plainly when the
// server refuses the one typed. Nothing is called an error before a try.

import { h, fill } from "../dom.js";
import { failureSentence } from "../words.js";

export function mount(root, { message, onToken }) {
  const input = h("input#token", { type: "password", autocomplete: "current-password", required: true, spellcheck: false, "aria-describedby": "login-help login-error" });
  const error = h("p#login-error.error-text", { role: "alert" });
  const submit = h("button.primary", { type: "submit" }, "Sign in");
  const form = h("form#login.login.card-panel", { on: { submit: async (e) => {
    e.preventDefault();
    if (!input.value.trim()) { input.focus(); return; }
    submit.disabled = true;
    error.textContent = "";
    const err = await onToken(input.value.trim());
    submit.disabled = false;
    if (err) {
      error.textContent = err.status === 401
        ? "The server refused this token. Check it and try again."
        : failureSentence("check the token", err);
      input.select();
    }
  } } },
    h("h1", "This server needs its token"),
    h("p#login-help.note", "It is the token tether was started with: its ", h("code", "--token"), " option, the ", h("code", "TETHER_TOKEN"),
      " variable or its token file. This browser keeps it until you choose Forget token."),
    message ? h("p.notice", message) : null,
    h("label.field", h("span", "Token"), input), error, h("div.form-actions", submit));
  fill(root, h("div.page", form));
  input.focus();
}
