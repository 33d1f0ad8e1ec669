// The "live" mark in the header follows the event stream's state (htmx's SSE extension
// reconnects by itself; this only shows whether the page is following the orchestrator).
document.addEventListener("htmx:sseOpen", function () {
  var m = document.getElementById("live");
  if (m) { m.textContent = "● live"; m.className = "live"; }
});
document.addEventListener("htmx:sseError", function () {
  var m = document.getElementById("live");
  if (m) { m.textContent = "● reconnecting"; m.className = "live lost"; }
});
