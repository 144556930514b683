// The inbox's only script (served from this folder, no third-party code). Every 2 s it
// fetches the page it is on and swaps in the regions marked data-live whose version
// changed. The new regions come from the server's autoescaped templates through
// DOMParser: no HTML is ever built from strings here, and nothing is assigned to innerHTML.
// A form region is swapped only when what it decides changed, so typed notes survive
// another approver's vote. Countdowns tick every second. Times come in UTC (labelled so,
// for a page without scripts) and are shown here in the reader's own time zone.
"use strict";
(function () {
  const POLL_MS = 2000;

  function countdown() {
    for (const el of document.querySelectorAll("[data-deadline]")) {
      const left = Math.floor((Date.parse(el.dataset.deadline) - Date.now()) / 1000);
      el.textContent = left > 0
        ? Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0") + " left"
        : "deadline passed";
    }
  }

  const LOCAL = {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  };

  function localTimes() {
    for (const el of document.querySelectorAll("time[datetime]:not([data-local])")) {
      const at = new Date(el.dateTime);
      if (isNaN(at)) continue;
      el.title = el.textContent;  // the UTC time, on hover
      el.textContent = at.toLocaleString(undefined, LOCAL);
      el.dataset.local = "1";
    }
  }

  function offline(on) {
    const banner = document.getElementById("offline");
    if (banner) banner.hidden = !on;
  }

  async function refresh() {
    let response;
    try {
      response = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
    } catch (err) {
      offline(true);
      return;
    }
    if (document.body.dataset.retry) {
      if (response.ok) location.reload();  // the server is back: show the real page
      return;
    }
    if (response.status === 503) { offline(true); return; }
    offline(false);
    if (!response.ok || response.redirected) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const region of document.querySelectorAll("[data-live]")) {
      const next = fresh.getElementById(region.id);
      if (next && next.dataset.live !== region.dataset.live) {
        region.replaceWith(document.adoptNode(next));
      }
    }
    countdown();
    localTimes();
  }

  function start() {
    localTimes();
    countdown();
    setInterval(countdown, 1000);
    if (document.querySelector("[data-live]") || document.body.dataset.retry) {
      setInterval(refresh, POLL_MS);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
