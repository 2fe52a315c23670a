// The workflow page: every step's badge follows its job over Socket.IO (namespace /jobs); when a step
// finishes, the workflow's own state is read again (it may have finished, or a step may have added steps).
(function () {
  "use strict";
  var FINISHED = ["succeeded", "failed", "canceled"];
  var root = document.getElementById("workflow");
  if (!root) return;
  var statusEl = root.querySelector("[data-role=workflow-status]");
  var socket = io("/jobs", { transports: ["websocket"] });

  function setBadge(el, status) {
    if (!el) return;
    el.textContent = status;
    el.className = "badge badge-" + status;
  }

  function steps() {
    return Array.prototype.slice.call(document.querySelectorAll(".wf-step[data-job-id]"));
  }

  // A step's final update is published before the workflow's rules have run: while every step is final
  // and the workflow still reads running, ask again a little later (a bounded number of times).
  var RETRY_MS = 500;
  var RETRIES = 40;

  function allFinal(wf) {
    return wf.steps.every(function (s) { return FINISHED.indexOf(s.status) !== -1; });
  }

  function refresh(retries) {
    fetch("/workflows/" + root.dataset.workflowId + "/state", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (wf) {
        if (!wf) return;
        if (wf.steps.length !== Number(root.dataset.steps)) {
          window.location.reload(); // a step added steps: lay the graph out again
          return;
        }
        root.dataset.status = wf.status;
        setBadge(statusEl, wf.status);
        wf.steps.forEach(function (s) {
          var row = document.querySelector('.wf-step[data-job-id="' + s.job_id + '"]');
          if (row) setBadge(row.querySelector("[data-role=status]"), s.status);
        });
        if (wf.status === "running" && allFinal(wf) && retries > 0) {
          setTimeout(function () { refresh(retries - 1); }, RETRY_MS);
        }
      });
  }

  socket.on("connect", function () {
    steps().forEach(function (row) { socket.emit("subscribe", { job_id: row.dataset.jobId }); });
  });
  socket.on("job:update", function (job) {
    var row = document.querySelector('.wf-step[data-job-id="' + job.id + '"]');
    if (!row) return;
    setBadge(row.querySelector("[data-role=status]"), job.status);
    if (FINISHED.indexOf(job.status) !== -1 && root.dataset.status === "running") refresh(RETRIES);
  });
})();
