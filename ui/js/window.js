// A windowed list for rows of varying height: only a window of rows (at most
// `max`) is in the DOM; sentinels at both ends grow it by `step` rows as they
// scroll into view and the far end is trimmed, keeping what is on screen in
// place. While the view follows the end, new rows are appended and the view
// stays at the bottom.

export class WindowedList {
  constructor(scroller, { count, render, max = 300, step = 80 }) {
    this.scroller = scroller;
    this.count = count;
    this.render = render;
    this.max = max;
    this.step = step;
    this.lo = 0;
    this.hi = 0;
    this.els = new Map(); // row index -> element
    this.following = true;
    this.top = document.createElement("div");
    this.top.className = "sentinel";
    this.list = document.createElement("div");
    this.list.className = "rows";
    this.bottom = document.createElement("div");
    this.bottom.className = "sentinel";
    scroller.replaceChildren(this.top, this.list, this.bottom);
    this.observer = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        if (e.target === this.top) this.growUp();
        else this.growDown();
      }
    }, { root: scroller, rootMargin: "400px 0px" });
    this.observer.observe(this.top);
    this.observer.observe(this.bottom);
    this.lastTop = 0;
    scroller.addEventListener("scroll", () => {
      const atBottom = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 40;
      if (scroller.scrollTop < this.lastTop - 2 && !atBottom) this.following = false;
      else if (atBottom && this.hi === this.count()) this.following = true;
      this.lastTop = scroller.scrollTop;
      this.onFollow?.(this.following);
    }, { passive: true });
  }

  el(i) {
    let el = this.els.get(i);
    if (!el) {
      el = this.render(i);
      this.els.set(i, el);
    }
    return el;
  }

  /** New rows were added at the end. */
  appended() {
    const n = this.count();
    if (!this.following) { this.onFollow?.(false); return; }
    if (this.hi < n) {
      const from = Math.max(this.hi, n - this.max);
      if (from > this.hi) {
        // Jumped past the window: start over at the end.
        for (const el of this.els.values()) el.remove();
        this.els.clear();
        this.lo = this.hi = from;
      }
      const frag = document.createDocumentFragment();
      for (let i = this.hi; i < n; i++) frag.append(this.el(i));
      this.list.append(frag);
      this.hi = n;
      this.trimTop();
    }
    this.scrollToEnd();
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.lastTop = this.scroller.scrollTop;
  }

  /** Row `i` changed: render it again if it is in the window. */
  changed(i, update) {
    const old = this.els.get(i);
    if (!old) return;
    if (update && update(old)) return;
    const el = this.render(i);
    old.replaceWith(el);
    this.els.set(i, el);
  }

  /** Shows the end and follows it again. */
  jumpToEnd() {
    this.following = true;
    this.appended();
    this.scrollToEnd();
    this.onFollow?.(true);
  }

  growUp() {
    if (this.lo === 0) return;
    const from = Math.max(0, this.lo - this.step);
    const before = this.scroller.scrollHeight;
    const frag = document.createDocumentFragment();
    for (let i = from; i < this.lo; i++) frag.append(this.el(i));
    this.list.prepend(frag);
    this.lo = from;
    this.scroller.scrollTop += this.scroller.scrollHeight - before;
    this.trimBottom();
  }

  growDown() {
    const n = this.count();
    if (this.hi >= n) return;
    const to = Math.min(n, this.hi + this.step);
    const frag = document.createDocumentFragment();
    for (let i = this.hi; i < to; i++) frag.append(this.el(i));
    this.list.append(frag);
    this.hi = to;
    this.trimTop();
  }

  trimTop() {
    if (this.hi - this.lo <= this.max) return;
    const to = this.hi - this.max;
    const before = this.scroller.scrollHeight;
    for (let i = this.lo; i < to; i++) { this.els.get(i)?.remove(); this.els.delete(i); }
    this.lo = to;
    if (!this.following) this.scroller.scrollTop -= before - this.scroller.scrollHeight;
  }

  trimBottom() {
    if (this.hi - this.lo <= this.max) return;
    const from = this.lo + this.max;
    for (let i = from; i < this.hi; i++) { this.els.get(i)?.remove(); this.els.delete(i); }
    this.hi = from;
    this.following = false;
    this.onFollow?.(false);
  }

  destroy() {
    this.observer.disconnect();
  }
}
