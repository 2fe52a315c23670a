// The operator console: swaps in a freshly rendered panel on every job update (Socket.IO, the admins'
// room) and every few seconds (heartbeats, queue depths), and draws the last hour's charts with uPlot.
(function () {
  "use strict";
  var panel = document.getElementById("console-panel");
  if (!panel) return;
  var panelUrl = panel.dataset.panelUrl;
  var everyMs = Number(panel.dataset.refreshS || 5) * 1000;
  var liveState = document.getElementById("live-state");
  var charts = [];
  var loading = false;
  var pending = false;
  var debounce = null;

  var CHARTS = [
    ["chart-succeeded", "succeeded", "#1f7a4d", "rgba(31,122,77,.12)"],
    ["chart-failed", "failed", "#b3261e", "rgba(179,38,30,.12)"],
    ["chart-wait", "wait_s", "#1c5fa8", "rgba(28,95,168,.10)"],
  ];

  // Counts per minute are bars; the mean wait is a line with points (a lone minute still shows).
  function series(spec) {
    var line = { label: spec[1], stroke: spec[2], fill: spec[3], width: 2 };
    if (spec[1] === "wait_s") {
      line.points = { show: true, size: 5, fill: spec[2] };
    } else if (uPlot.paths && uPlot.paths.bars) {
      line.paths = uPlot.paths.bars({ size: [0.8, 12] });
      line.points = { show: false };
    }
    return line;
  }

  function drawCharts() {
    charts.forEach(function (chart) { chart.destroy(); });
    charts = [];
    var source = document.getElementById("activity-data");
    if (!source || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.textContent);
    CHARTS.forEach(function (spec) {
      var box = document.getElementById(spec[0]);
      if (!box) return;
      var opts = {
        width: Math.max(200, box.clientWidth),
        height: 150,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
        axes: [{ size: 28, font: "11px system-ui" }, { size: 36, font: "11px system-ui" }],
        series: [{}, series(spec)],
      };
      charts.push(new uPlot(opts, [data.t, data[spec[1]]], box));
    });
  }

  function openDetails() {
    return Array.prototype.map.call(panel.querySelectorAll("details[open][data-key]"), function (d) {
      return d.dataset.key;
    });
  }

  function setLive(ok) {
    if (!liveState) return;
    liveState.textContent = ok ? "● live" : "● reconnecting";
    liveState.classList.toggle("stale", !ok);
  }

  function refresh() {
    if (loading) { pending = true; return; }
    loading = true;
    fetch(panelUrl, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok || response.redirected) throw new Error("panel: " + response.status);
        return response.text();
      })
      .then(function (html) {
        var open = openDetails();
        panel.innerHTML = html;
        open.forEach(function (key) {
          var d = panel.querySelector('details[data-key="' + key + '"]');
          if (d) d.open = true;
        });
        drawCharts();
        setLive(true);
      })
      .catch(function () { setLive(false); })
      .then(function () {
        loading = false;
        if (pending) { pending = false; soon(); }
      });
  }

  // Many updates in a burst (a job's progress) cost one refresh.
  function soon() {
    if (debounce) return;
    debounce = setTimeout(function () { debounce = null; refresh(); }, 750);
  }

  // Bulk and destructive actions ask first.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });

  if (typeof io !== "undefined") {
    var socket = io("/jobs", { transports: ["websocket"] });
    socket.on("connect", function () { socket.emit("watch", { scope: "all" }); setLive(true); });
    socket.on("disconnect", function () { setLive(false); });
    socket.on("job:update", soon);
  }
  setInterval(refresh, everyMs);
  window.addEventListener("resize", function () { drawCharts(); });
  drawCharts();
})();
