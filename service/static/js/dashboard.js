// The dashboard's 90-day chart (Chart.js, served by the app itself).
"use strict";

(function drawHistory() {
  const source = document.getElementById("history-data");
  const canvas = document.getElementById("history-chart");
  if (!source || !canvas || typeof Chart === "undefined") return;
  const days = JSON.parse(source.textContent);
  new Chart(canvas, {
    data: {
      labels: days.map((d) => d.day),
      datasets: [
        { type: "bar", label: "Relief score", data: days.map((d) => d.relief_score),
          backgroundColor: "rgba(10, 88, 202, 0.55)", yAxisID: "y" },
        { type: "line", label: "Minutes", data: days.map((d) => d.minutes),
          borderColor: "#116329", pointRadius: 0, borderWidth: 1.5, yAxisID: "y1" },
      ],
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { ticks: { maxTicksLimit: 6 } },
        y: { beginAtZero: true, title: { display: true, text: "Relief score" } },
        y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false },
              title: { display: true, text: "Minutes" } },
      },
    },
  });
  canvas.dataset.drawn = "true";
})();
