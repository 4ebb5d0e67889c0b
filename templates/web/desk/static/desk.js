/* The desk's only script. A region marked data-refresh="SECONDS" (the delivery report while
   a send runs) is replaced every SECONDS by the same region from a fresh copy of the page,
   until the server stops marking it. Without script, a <noscript> meta refresh does the same. */
(function () {
  "use strict";
  var live = document.querySelector("[data-refresh]");
  if (!live || !window.fetch || !window.DOMParser) return;
  var every = Math.max(5, parseInt(live.getAttribute("data-refresh"), 10) || 10) * 1000;
  function tick() {
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) { window.setTimeout(tick, every); return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById(live.id);
        if (!fresh) return;
        live.replaceWith(fresh);
        live = fresh;
        if (fresh.hasAttribute("data-refresh")) window.setTimeout(tick, every);
      })
      .catch(function () { window.setTimeout(tick, every); });
  }
  window.setTimeout(tick, every);
})();
