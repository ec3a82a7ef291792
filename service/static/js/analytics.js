// The analytics page's charts (Chart.js, served by the app itself). The page's text and
// tables already say everything; the charts are the picture of it.
"use strict";

(function drawAnalytics() {
  const source = document.getElementById("analytics-data");
  if (!source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const BLUE = "rgba(10, 88, 202, 0.6)";
  const GREEN = "#116329";
  const RED = "#a40e26";
  const base = { animation: false, responsive: true, maintainAspectRatio: false };
  // Long day axes: measure a few labels to lay the ticks out, not all (up to years of days).
  const dayAxis = { ticks: { maxTicksLimit: 8, sampleSize: 8, maxRotation: 0 } };

  // The charts a person sees first are drawn at once; the others one at a time after the
  // first screen has been painted (each a task of its own, so the page stays responsive),
  // or at once when one is scrolled to before its turn.
  const later = [];
  function render(canvas, config) {
    if (canvas.dataset.drawn === "true") return;
    new Chart(canvas, config);
    canvas.dataset.drawn = "true";
  }
  function draw(id, config) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    if (canvas.getBoundingClientRect().top < window.innerHeight) render(canvas, config);
    else later.push([canvas, config]);
  }
  function drawLater() {
    if (!later.length) return;
    const watch = "IntersectionObserver" in window
      ? new IntersectionObserver((entries) => {
        for (const entry of entries) {
          if (!entry.isIntersecting) continue;
          const found = later.find(([canvas]) => canvas === entry.target);
          if (found) render(found[0], found[1]);
        }
      })
      : null;
    if (watch) later.forEach(([canvas]) => watch.observe(canvas));
    const next = () => {
      const item = later.shift();
      if (!item) {
        if (watch) watch.disconnect();
        return;
      }
      render(item[0], item[1]);
      setTimeout(next, 0);
    };
    requestAnimationFrame(() => setTimeout(next, 0));
  }

  function scale(title, extra) {
    return Object.assign({ title: { display: true, text: title } }, extra || {});
  }

  // Relief per day (bars) and cumulative (line, right axis).
  const relief = data.relief;
  draw("relief-chart", {
    data: {
      labels: relief.labels,
      datasets: [
        { type: "bar", label: "Relief per day", data: relief.per_day, backgroundColor: BLUE,
          yAxisID: "y" },
        { type: "line", label: "Cumulative relief", data: relief.cumulative, borderColor: GREEN,
          pointRadius: 0, borderWidth: 1.5, yAxisID: "y1" },
      ],
    },
    options: Object.assign({}, base, {
      normalized: true, // one value per day, in order
      interaction: { mode: "index", intersect: false },
      scales: {
        x: dayAxis,
        y: scale("Relief per day", { beginAtZero: true }),
        y1: scale("Cumulative", { beginAtZero: true, position: "right",
                                  grid: { drawOnChartArea: false } }),
      },
    }),
  });

  // The chosen measure per day over 30/60/90 days.
  const trend = data.trend;
  draw("trend-chart", {
    type: "line",
    data: {
      labels: trend.labels,
      datasets: [{ label: `${trend.label} (${trend.aggregation})`, data: trend.values,
                   borderColor: BLUE, backgroundColor: BLUE, spanGaps: false, pointRadius: 2 }],
    },
    options: Object.assign({}, base, { normalized: true, scales: { x: dayAxis } }),
  });

  // One small histogram per 0–100 measure.
  data.histograms.forEach((h) => {
    draw(`hist-${h.key}`, {
      type: "bar",
      data: { labels: data.bucket_labels,
              datasets: [{ label: h.label, data: h.counts, backgroundColor: BLUE }] },
      options: Object.assign({}, base, {
        plugins: { legend: { display: false } },
        scales: { x: { ticks: { maxTicksLimit: 5 } }, y: { beginAtZero: true } },
      }),
    });
  });

  // Prediction vs outcome: bubbles sized by the number of attempts in each 5-point cell,
  // and the mean actual relief per 10-point band of the prediction.
  function predictionChart(id, grid, showDiagonal) {
    const most = Math.max(1, ...grid.points.map((p) => p.n));
    const datasets = [
      { type: "bubble", label: "Attempts",
        data: grid.points.map((p) => ({ x: p.x, y: p.y, r: 2 + 10 * Math.sqrt(p.n / most),
                                        n: p.n })),
        backgroundColor: BLUE },
      { type: "line", label: "Mean relief", data: grid.bands, borderColor: RED,
        backgroundColor: RED, pointRadius: 3 },
    ];
    if (showDiagonal) {
      datasets.push({ type: "line", label: "As expected", data: [{ x: 0, y: 0 }, { x: 100, y: 100 }],
                      borderColor: "#8c959f", borderDash: [4, 4], pointRadius: 0, borderWidth: 1 });
    }
    draw(id, {
      data: { datasets },
      options: Object.assign({}, base, {
        plugins: { tooltip: { callbacks: { label: (ctx) => (ctx.raw.n
          ? `${ctx.raw.n} attempt(s) near (${ctx.raw.x}, ${ctx.raw.y})`
          : `${ctx.dataset.label}: ${Math.round(ctx.raw.y)}`) } } },
        scales: {
          x: scale(grid.x_label, { type: "linear", min: 0, max: 100 }),
          y: scale("Actual relief", { min: 0, max: 100 }),
        },
      }),
    });
  }
  predictionChart("aversion-chart", data.aversion_grid, false);
  predictionChart("expected-chart", data.relief_grid, true);

  // Correlation explorer: a sample of the attempts and the mean of Y per bin of X.
  const corr = data.correlation;
  draw("correlation-chart", {
    data: {
      datasets: [
        { type: "scatter", label: "Attempts", data: corr.points, backgroundColor: BLUE,
          pointRadius: 2 },
        { type: "line", label: `Mean ${corr.y_label.toLowerCase()} per bin`, data: corr.bin_points,
          borderColor: RED, backgroundColor: RED, pointRadius: 3 },
      ],
    },
    options: Object.assign({}, base, {
      scales: { x: scale(corr.x_label, { type: "linear" }), y: scale(corr.y_label) },
    }),
  });

  // Each emotion's mean intensity before and after the completed attempts.
  const felt = data.emotions || [];
  draw("emotions-chart", {
    type: "bar",
    data: {
      labels: felt.map((e) => e.name),
      datasets: [
        { label: "Before", data: felt.map((e) => e.before), backgroundColor: BLUE },
        { label: "After", data: felt.map((e) => e.after), backgroundColor: GREEN },
      ],
    },
    options: Object.assign({}, base, {
      indexAxis: "y",
      scales: { x: scale("Mean intensity", { min: 0, max: 100 }) },
    }),
  });

  drawLater();
})();
