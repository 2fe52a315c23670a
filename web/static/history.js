// The console's 24 h charts (rollups from the database): runs, wait p50/p95 and run time p50/p95.
(function () {
  "use strict";
  var source = document.getElementById("history-data");
  if (!source || typeof uPlot === "undefined") return;
  var data = JSON.parse(source.textContent);
  var CHARTS = [
    ["history-runs", [["succeeded", "#1f7a4d"], ["failed", "#b3261e"]]],
    ["history-wait", [["wait_p50", "#1c5fa8"], ["wait_p95", "#7a3e9d"]]],
    ["history-run", [["run_p50", "#a26100"], ["run_p95", "#b3261e"]]],
  ];
  var charts = [];
  function draw() {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    CHARTS.forEach(function (spec) {
      var box = document.getElementById(spec[0]);
      if (!box) return;
      var series = [{}];
      var columns = [data.t];
      spec[1].forEach(function (s) {
        series.push({ label: s[0], stroke: s[1], width: 2, spanGaps: false, points: { show: true, size: 3, fill: s[1] } });
        columns.push(data[s[0]]);
      });
      charts.push(new uPlot({
        width: Math.max(160, box.clientWidth),
        height: 150,
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max || 0)]; } } },
        axes: [{ size: 28, font: "11px system-ui" }, { size: 36, font: "11px system-ui" }],
        series: series,
      }, columns, box));
    });
  }
  draw();
  var timer = null;
  window.addEventListener("resize", function () { clearTimeout(timer); timer = setTimeout(draw, 200); });
})();
