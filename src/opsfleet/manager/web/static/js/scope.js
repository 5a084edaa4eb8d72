// A view's lifetime: the router creates one Scope per rendered view and disposes it on
// navigation. Polls registered with every() run one at a time (the next run is scheduled when
// the previous one finished), pause while the tab is hidden, and never fire after dispose().

import { clearError, reportError } from "./notify.js";

export const POLL_MS = 5000;

export class Scope {
  constructor() {
    this.disposed = false;
    this._cleanups = [];
    this._polls = [];
    this._onVisibility = () => {
      if (!document.hidden) for (const poll of this._polls) poll.kick();
    };
    document.addEventListener("visibilitychange", this._onVisibility);
  }

  /**
   * Run `fn` now and then every `ms` while the page is visible. A failure is shown in the
   * error banner under `key` (with `doing` as prefix) and cleared by the next success.
   * Returns {kick()}: run again now (e.g. after the user changed a filter).
   */
  every(ms, key, doing, fn) {
    let timer = null;
    let running = false;
    let again = false;
    const run = async () => {
      clearTimeout(timer);
      timer = null;
      if (this.disposed) return;
      if (running) {
        again = true;
        return;
      }
      if (document.hidden) return; // resumed by visibilitychange
      running = true;
      try {
        await fn();
        if (!this.disposed) clearError(key);
      } catch (error) {
        if (!this.disposed) reportError(key, error, doing);
      } finally {
        running = false;
      }
      if (this.disposed) return;
      if (again) {
        again = false;
        run();
      } else {
        timer = setTimeout(run, ms);
      }
    };
    const poll = { kick: run };
    this._polls.push(poll);
    this.onDispose(() => clearTimeout(timer));
    run();
    return poll;
  }

  onDispose(fn) {
    this._cleanups.push(fn);
  }

  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    document.removeEventListener("visibilitychange", this._onVisibility);
    for (const fn of this._cleanups.splice(0).reverse()) {
      try {
        fn();
      } catch (error) {
        console.error(error);
      }
    }
  }
}
