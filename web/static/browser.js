// The operators' job browser (/admin/jobs): rows follow their jobs live, and "select this page" ticks
// every row. Bulk actions go through a confirmation page that states the count.
(function () {
  "use strict";
  var list = document.getElementById("browser");
  var page = document.getElementById("select-page");
  var all = document.getElementById("all-matching");
  if (page) {
    page.addEventListener("change", function () {
      list.querySelectorAll("input.pick").forEach(function (box) { box.checked = page.checked; });
    });
  }
  if (all && page) {
    all.addEventListener("change", function () { if (all.checked) { page.checked = true; page.dispatchEvent(new Event("change")); } });
  }
  if (!list || typeof io === "undefined") return;
  var socket = io("/jobs", { transports: ["websocket"] });
  socket.on("connect", function () { socket.emit("watch", { scope: "all" }); });
  socket.on("job:update", function (job) {
    var row = list.querySelector('li[data-job-id="' + job.id + '"]');
    if (!row) return; // not on this page; a reload shows whether it matches
    row.dataset.status = job.status;
    var badge = row.querySelector("[data-role=status]");
    if (badge) { badge.textContent = job.status; badge.className = "badge badge-" + job.status; }
    var msg = row.querySelector("[data-role=message]");
    if (msg) msg.textContent = (job.message || "") + (job.error ? " — " + job.error.type + ": " + job.error.message : "");
  });
})();
