// Live job updates over Socket.IO (namespace /jobs). The server replays a job's state on subscribe,
// so a refreshed page or a reconnected socket is never behind.
(function () {
  "use strict";
  var FINISHED = ["succeeded", "failed", "canceled"];
  var socket = io("/jobs", { transports: ["websocket", "polling"] });

  function setBadge(el, status) {
    if (!el) return;
    el.textContent = status;
    el.className = "badge badge-" + status;
  }

  // ---- the job page -------------------------------------------------------------------------
  var jobEl = document.getElementById("job");
  if (jobEl) {
    var jobId = jobEl.dataset.jobId;
    var bar = jobEl.querySelector("[data-role=bar]");
    var fill = jobEl.querySelector("[data-role=fill]");
    var message = jobEl.querySelector("[data-role=message]");
    var error = jobEl.querySelector("[data-role=error]");
    var attempts = jobEl.querySelector("[data-role=attempts]");
    var cancel = jobEl.querySelector("[data-role=cancel]");
    var result = jobEl.querySelector("[data-role=result]");
    // The width is set here, not in the markup: the Content-Security-Policy allows no inline style.
    fill.style.width = (Number(bar.getAttribute("aria-valuenow")) || 0) + "%";

    var render = function (job) {
      if (job.id !== jobId) return;
      jobEl.dataset.status = job.status;
      bar.setAttribute("aria-valuenow", String(job.progress));
      fill.style.width = job.progress + "%";
      message.textContent = job.message || "";
      setBadge(jobEl.querySelector("[data-role=status]"), job.status);
      attempts.textContent = job.attempts + " of " + job.max_attempts;
      if (job.error) {
        error.hidden = false;
        error.textContent = job.error.type + ": " + job.error.message;
      } else {
        error.hidden = true;
      }
      var finished = FINISHED.indexOf(job.status) !== -1;
      cancel.hidden = finished;
      if (job.status === "succeeded" && job.result && job.result.url) {
        result.href = job.result.url;
        result.hidden = false;
        if (job.result.download_url) {
          // A file (an export): offer it; downloading is the user's choice, not a redirect.
          result.textContent = "Download";
          result.setAttribute("download", "");
        } else {
          // Let the 100% be seen for a moment, then open the result.
          setTimeout(function () { window.location.assign(job.result.url); }, 600);
        }
      }
    };
    socket.on("connect", function () { socket.emit("subscribe", { job_id: jobId }); });
    socket.on("job:update", render);
    socket.on("error", function (e) {
      if (e && e.job_id === jobId) { message.textContent = "This job is not available."; }
    });
  }

  // ---- the job list -------------------------------------------------------------------------
  var table = document.getElementById("jobs");
  if (table) {
    socket.on("connect", function () { socket.emit("watch", { scope: table.dataset.live || "mine" }); });
    socket.on("job:update", function (job) {
      var row = table.querySelector('tr[data-job-id="' + job.id + '"]');
      if (!row) {
        var empty = table.querySelector("tr.empty");
        if (empty) empty.remove();
        row = document.createElement("tr");
        row.dataset.jobId = job.id;
        var link = document.createElement("a");
        link.href = "/jobs/" + job.id;
        link.innerHTML = "<code></code>";
        link.firstChild.textContent = job.id.slice(0, 8);
        var cells = [link, document.createTextNode(job.type)];
        var status = document.createElement("span");
        status.dataset.role = "status";
        cells.push(status);
        var progressCell = document.createElement("td");
        progressCell.innerHTML = '<progress max="100" data-role="progress"></progress> <span class="muted" data-role="message"></span>';
        cells.forEach(function (node) { var td = document.createElement("td"); td.appendChild(node); row.appendChild(td); });
        row.appendChild(progressCell);
        var created = document.createElement("td");
        created.textContent = (job.created_at || "").slice(0, 19).replace("T", " ");
        row.appendChild(created);
        row.appendChild(document.createElement("td"));
        table.tBodies[0].insertBefore(row, table.tBodies[0].firstChild);
      }
      setBadge(row.querySelector("[data-role=status]"), job.status);
      var progress = row.querySelector("[data-role=progress]");
      if (progress) progress.value = job.progress;
      var msg = row.querySelector("[data-role=message]");
      if (msg) msg.textContent = job.message || "";
      if (FINISHED.indexOf(job.status) !== -1) {
        var form = row.querySelector("[data-role=cancel]");
        if (form) form.remove();
      }
    });
  }
})();
