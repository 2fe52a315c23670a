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
    var timeline = document.querySelector("[data-role=timeline]");
    var last = null;
    // The width is set here, not in the markup: the Content-Security-Policy allows no inline style.
    fill.style.width = (Number(bar.getAttribute("aria-valuenow")) || 0) + "%";

    // The timeline grows with every change of state, progress or message.
    var addEvent = function (job) {
      var key = job.status + "|" + job.progress + "|" + (job.message || "");
      if (!timeline || key === last) return;
      last = key;
      var item = document.createElement("li");
      var badge = document.createElement("span");
      setBadge(badge, job.status);
      var text = document.createElement("span");
      text.textContent = " " + job.progress + "% " + (jobEl.dataset.plain ? "" : job.message || "") + " ";
      var time = document.createElement("time");
      var now = new Date();
      time.dateTime = now.toISOString();
      time.title = now.toISOString().replace("T", " ").slice(0, 19) + " UTC";
      time.textContent = "just now";
      time.className = "muted";
      item.appendChild(badge);
      item.appendChild(text);
      item.appendChild(time);
      timeline.appendChild(item);
    };
    if (timeline && timeline.lastElementChild) {
      var lastItem = timeline.lastElementChild;
      last = lastItem.dataset.key || null;
    }

    var render = function (job) {
      if (job.id !== jobId) return;
      jobEl.dataset.status = job.status;
      bar.setAttribute("aria-valuenow", String(job.progress));
      fill.style.width = job.progress + "%";
      message.textContent = jobEl.dataset.plain ? job.status : job.message || "";
      addEvent(job);
      setBadge(jobEl.querySelector("[data-role=status]"), job.status);
      attempts.textContent = job.attempts + " of " + job.max_attempts;
      if (job.error) {
        error.hidden = false;
        error.textContent = job.error.type + ": " + job.error.message;
      } else {
        error.hidden = true;
      }
      var finished = FINISHED.indexOf(job.status) !== -1;
      if (cancel) cancel.hidden = finished;
      // Why it waits was read with the page: once the job moved on, it no longer holds.
      var waiting = jobEl.querySelector("[data-role=waiting]");
      if (waiting) waiting.hidden = waiting.dataset.forStatus !== job.status;
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

  // ---- the job list: top-level jobs, follow-ups collapsed under their parent ---------------------
  var list = document.getElementById("jobs");
  if (list) {
    var item = function (job, tag) {
      var li = document.createElement(tag || "li");
      li.dataset.jobId = job.id;
      var link = document.createElement("a");
      link.href = "/jobs/" + job.id;
      var code = document.createElement("code");
      code.textContent = job.id.slice(0, 8);
      link.appendChild(document.createTextNode(job.type + " "));
      link.appendChild(code);
      var status = document.createElement("span");
      status.dataset.role = "status";
      var msg = document.createElement("span");
      msg.className = "muted";
      msg.dataset.role = "message";
      li.appendChild(link);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(status);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(msg);
      return li;
    };
    socket.on("connect", function () { socket.emit("watch", { scope: list.dataset.live || "mine" }); });
    socket.on("job:update", function (job) {
      var row = list.querySelector('[data-job-id="' + job.id + '"]');
      if (!row && job.parent_id) {
        var parent = list.querySelector('li.job-item[data-job-id="' + job.parent_id + '"]');
        if (!parent) return; // its parent is on another page
        var box = parent.querySelector("details.children ul");
        if (!box) {
          var details = document.createElement("details");
          details.className = "children";
          details.innerHTML = "<summary>Follow-up jobs</summary><ul></ul>";
          parent.appendChild(details);
          box = details.querySelector("ul");
        }
        row = item(job);
        box.appendChild(row);
      } else if (!row) {
        if (window.location.search) return; // a filtered list: a reload shows whether it matches
        var empty = list.querySelector("li.empty");
        if (empty) empty.remove();
        row = item(job);
        row.className = "job-item";
        list.insertBefore(row, list.firstChild);
      }
      setBadge(row.querySelector("[data-role=status]"), job.status);
      var progress = row.querySelector("[data-role=progress]");
      if (progress) progress.value = job.progress;
      var msg = row.querySelector("[data-role=message]");
      if (msg && !row.dataset.plain) msg.textContent = job.message || "";
      if (FINISHED.indexOf(job.status) !== -1) {
        var form = row.querySelector("[data-role=cancel]");
        if (form) form.remove();
      }
    });
  }
})();
