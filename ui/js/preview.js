// Opening a dev server's preview: a signed, expiring link made by the server
// (`POST /v1/ports/{port}/links`), opened in a new tab. A browser sends no
// header on a navigation: opening the link sets a cookie for that port's
// preview and redirects into it.

import { api, TOKEN_KEY } from "./api.js";

/**
 * Opens port `port`'s preview in a new tab. The tab is opened at once, on
 * the click (so no popup blocker stops it), and sent to the link when the
 * server has made it; it is closed again if that fails (the error is
 * thrown). Returns {url, expires_at, opened}: `opened` is false when the
 * browser allowed no new tab (show the url as a link then).
 */
export async function openPreview(port) {
  const tab = window.open("", "_blank");
  // A tab opened this way starts with a copy of this tab's sessionStorage
  // (the token): the preview is served from this origin, so take it out
  // before the app's pages load there.
  try {
    tab?.sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Not reachable: nothing was copied into it either.
  }
  let link;
  try {
    link = await api.post(`/v1/ports/${Number(port)}/links`, {});
  } catch (e) {
    tab?.close();
    throw e;
  }
  const url = new URL(link.url, location.href).href;
  if (tab) {
    tab.opener = null;
    tab.location.href = url;
  }
  return { ...link, url, opened: !!tab };
}
