/* tbal dashboard charts: small hand-written SVG charts (line, bars, reliability diagram).
 * No dependency. Each function returns an <svg> element sized by its viewBox (it scales with its box).
 * Values are numbers; shares are fractions in [0, 1] shown as percentages by the formatters. */
"use strict";

(function (global) {
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, children) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null) node.setAttribute(name, String(value));
    }
    for (const child of children || []) {
      if (child !== null && child !== undefined) node.appendChild(child);
    }
    return node;
  }

  function text(x, y, content, attrs) {
    const node = el("text", Object.assign({ x: x, y: y }, attrs || {}));
    node.textContent = content;
    return node;
  }

  function tooltip(content) {
    const node = el("title");
    node.textContent = content;
    return node;
  }

  /* "Nice" tick values covering [min, max] with about `count` steps (steps of 1, 2, 2.5 or 5 × 10^k). */
  function niceTicks(min, max, count) {
    if (!(max > min)) max = min + 1;
    const raw = (max - min) / Math.max(1, count);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || 10 * power;
    const ticks = [];
    for (let v = Math.ceil(min / step - 1e-9) * step; v <= max + step * 1e-9; v += step) {
      ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    }
    return { ticks: ticks, step: step };
  }

  function niceMax(value, count) {
    const t = niceTicks(0, value > 0 ? value : 1, count || 5);
    return t.ticks[t.ticks.length - 1] < value ? t.ticks[t.ticks.length - 1] + t.step : t.ticks[t.ticks.length - 1];
  }

  function pct(value, digits) {
    if (value === null || value === undefined || !isFinite(value)) return "–";
    const d = digits !== undefined ? digits : value !== 0 && Math.abs(value) < 0.1 ? 1 : 0;
    return (100 * value).toFixed(d) + "%";
  }

  function layout(opts) {
    const width = opts.width || 640;
    const height = opts.height || 280;
    const margin = Object.assign({ top: 14, right: 18, bottom: 46, left: 58 }, opts.margin || {});
    return {
      width: width,
      height: height,
      margin: margin,
      x0: margin.left,
      x1: width - margin.right,
      y0: height - margin.bottom,
      y1: margin.top,
    };
  }

  function frame(box, opts) {
    return el("svg", {
      viewBox: "0 0 " + box.width + " " + box.height,
      class: "chart " + (opts.className || ""),
      role: "img",
      "aria-label": opts.title || "chart",
      preserveAspectRatio: "xMidYMid meet",
    });
  }

  /* Axes with grid lines. xScale / yScale map data to pixels; xTicks / yTicks are data values. */
  function axes(svg, box, o) {
    const g = el("g", { class: "axes" });
    for (const v of o.yTicks) {
      const y = o.yScale(v);
      g.appendChild(el("line", { x1: box.x0, x2: box.x1, y1: y, y2: y, class: "grid" }));
      g.appendChild(text(box.x0 - 8, y + 4, o.yFormat(v), { class: "tick", "text-anchor": "end" }));
    }
    for (const v of o.xTicks) {
      const x = o.xScale(v);
      g.appendChild(el("line", { x1: x, x2: x, y1: box.y0, y2: box.y0 + 5, class: "tickmark" }));
      g.appendChild(text(x, box.y0 + 19, o.xFormat(v), { class: "tick", "text-anchor": "middle" }));
    }
    g.appendChild(el("line", { x1: box.x0, x2: box.x1, y1: box.y0, y2: box.y0, class: "axis" }));
    g.appendChild(el("line", { x1: box.x0, x2: box.x0, y1: box.y0, y2: box.y1, class: "axis" }));
    if (o.xLabel) {
      g.appendChild(text((box.x0 + box.x1) / 2, box.height - 8, o.xLabel, { class: "axis-title", "text-anchor": "middle" }));
    }
    if (o.yLabel) {
      const cy = (box.y0 + box.y1) / 2;
      g.appendChild(
        text(14, cy, o.yLabel, { class: "axis-title", "text-anchor": "middle", transform: "rotate(-90 14 " + cy + ")" })
      );
    }
    svg.appendChild(g);
  }

  function integerTicks(min, max, maxCount) {
    const span = max - min;
    const step = Math.max(1, Math.ceil((span + 1) / maxCount));
    const ticks = [];
    for (let v = Math.ceil(min); v <= max; v += step) ticks.push(v);
    return ticks;
  }

  /* A line chart over integer x (rounds). series: [{name, color, dash, points: [[x, y|null], ...]}];
   * hLines: [{y, label, color, dash}] drawn across (e.g. ε). Options: yLabel, xLabel, yMax, yFormat. */
  function lineChart(opts) {
    const box = layout(opts);
    const svg = frame(box, opts);
    const xs = [];
    let top = 0;
    for (const s of opts.series) {
      for (const [x, y] of s.points) {
        xs.push(x);
        if (y !== null && isFinite(y)) top = Math.max(top, y);
      }
    }
    for (const h of opts.hLines || []) top = Math.max(top, h.y);
    const xMin = xs.length ? Math.min.apply(null, xs) : 0;
    const xMax = xs.length ? Math.max.apply(null, xs) : 1;
    const pad = xMax === xMin ? 0.5 : 0.25;
    const yMax = opts.yMax !== undefined ? opts.yMax : niceMax(top * 1.15 || 0.01, 5);
    const xScale = (v) => box.x0 + ((v - (xMin - pad)) / (xMax - xMin + 2 * pad)) * (box.x1 - box.x0);
    const yScale = (v) => box.y0 - (Math.min(v, yMax) / yMax) * (box.y0 - box.y1);
    const yFormat = opts.yFormat || ((v) => pct(v));
    axes(svg, box, {
      xScale: xScale,
      yScale: yScale,
      xTicks: integerTicks(xMin, xMax, 12),
      yTicks: niceTicks(0, yMax, 5).ticks,
      xFormat: (v) => String(v),
      yFormat: yFormat,
      xLabel: opts.xLabel,
      yLabel: opts.yLabel,
    });
    for (const h of opts.hLines || []) {
      const y = yScale(h.y);
      const g = el("g", { class: "hline" }, [tooltip(h.label)]);
      g.appendChild(
        el("line", { x1: box.x0, x2: box.x1, y1: y, y2: y, stroke: h.color, "stroke-width": 2, "stroke-dasharray": h.dash || "7 5" })
      );
      g.appendChild(text(box.x1 - 4, y - 6, h.label, { class: "hline-label", fill: h.color, "text-anchor": "end" }));
      svg.appendChild(g);
    }
    for (const s of opts.series) {
      const g = el("g", { class: "series", "data-series": s.name });
      let d = "";
      let pen = false;
      for (const [x, y] of s.points) {
        if (y === null || !isFinite(y)) {
          pen = false;
          continue;
        }
        d += (pen ? "L" : "M") + xScale(x).toFixed(1) + " " + yScale(y).toFixed(1);
        pen = true;
      }
      g.appendChild(
        el("path", { d: d, fill: "none", stroke: s.color, "stroke-width": 2.5, "stroke-dasharray": s.dash || null, "stroke-linejoin": "round" })
      );
      for (const [x, y] of s.points) {
        if (y === null || !isFinite(y)) continue;
        g.appendChild(
          el("circle", { cx: xScale(x), cy: yScale(y), r: 4, fill: "#fff", stroke: s.color, "stroke-width": 2 }, [
            tooltip(s.name + ", round " + x + ": " + yFormat(y)),
          ])
        );
      }
      svg.appendChild(g);
    }
    return svg;
  }

  /* Bars over integer x (rounds), stacked: stacks [{name, color, values: [[x, y], ...]}];
   * hLines as in lineChart; yFormat for counts by default. */
  function barChart(opts) {
    const box = layout(opts);
    const svg = frame(box, opts);
    const totals = new Map();
    for (const s of opts.stacks) {
      for (const [x, y] of s.values) totals.set(x, (totals.get(x) || 0) + (y || 0));
    }
    const xs = Array.from(totals.keys());
    let top = xs.length ? Math.max.apply(null, Array.from(totals.values())) : 1;
    for (const h of opts.hLines || []) top = Math.max(top, h.y);
    const yMax = niceMax(top * 1.1 || 1, 5);
    const xMin = xs.length ? Math.min.apply(null, xs) : 0;
    const xMax = xs.length ? Math.max.apply(null, xs) : 0;
    const slots = xMax - xMin + 1;
    const slot = (box.x1 - box.x0) / slots;
    const xScale = (v) => box.x0 + (v - xMin + 0.5) * slot;
    const yScale = (v) => box.y0 - (Math.min(v, yMax) / yMax) * (box.y0 - box.y1);
    const yFormat = opts.yFormat || ((v) => Math.round(v).toLocaleString("en-US"));
    axes(svg, box, {
      xScale: xScale,
      yScale: yScale,
      xTicks: integerTicks(xMin, xMax, 12),
      yTicks: niceTicks(0, yMax, 5).ticks,
      xFormat: (v) => String(v),
      yFormat: yFormat,
      xLabel: opts.xLabel,
      yLabel: opts.yLabel,
    });
    const barWidth = Math.min(46, slot * 0.62);
    const base = new Map();
    for (const s of opts.stacks) {
      const g = el("g", { class: "series", "data-series": s.name });
      for (const [x, y] of s.values) {
        if (!y) continue;
        const from = base.get(x) || 0;
        base.set(x, from + y);
        g.appendChild(
          el(
            "rect",
            {
              x: xScale(x) - barWidth / 2,
              y: yScale(from + y),
              width: barWidth,
              height: Math.max(0.5, yScale(from) - yScale(from + y)),
              fill: s.color,
              rx: 2,
            },
            [tooltip(s.name + ", round " + x + ": " + yFormat(y))]
          )
        );
      }
      svg.appendChild(g);
    }
    for (const h of opts.hLines || []) {
      const y = yScale(h.y);
      const g = el("g", { class: "hline" }, [tooltip(h.label)]);
      g.appendChild(el("line", { x1: box.x0, x2: box.x1, y1: y, y2: y, stroke: h.color, "stroke-width": 2, "stroke-dasharray": h.dash || "7 5" }));
      g.appendChild(text(box.x1 - 4, y - 6, h.label, { class: "hline-label", fill: h.color, "text-anchor": "end" }));
      svg.appendChild(g);
    }
    return svg;
  }

  /* Reliability diagram: per confidence bin, accuracy (bars) against the diagonal of perfect calibration,
   * the bin's mean confidence (dots), and below it the number of points per bin. bins: [{lo, hi, count,
   * accuracy, confidence}] with lo/hi/accuracy/confidence in [0, 1]. */
  function reliabilityChart(opts) {
    const box = layout(Object.assign({ height: 330, margin: { bottom: 46, top: 14, left: 58, right: 18 } }, opts));
    const svg = frame(box, opts);
    const hatch = el("pattern", { id: "tbal-gap-hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" }, [
      el("line", { x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#ef4444", "stroke-width": 2.2 }),
    ]);
    svg.appendChild(el("defs", {}, [hatch]));
    const histHeight = 58;
    const gap = 26;
    const main = { x0: box.x0, x1: box.x1, y0: box.y0 - histHeight - gap, y1: box.y1 };
    const xScale = (v) => main.x0 + v * (main.x1 - main.x0);
    const yScale = (v) => main.y0 - v * (main.y0 - main.y1);
    const g = el("g", { class: "axes" });
    for (const v of [0, 0.2, 0.4, 0.6, 0.8, 1]) {
      g.appendChild(el("line", { x1: main.x0, x2: main.x1, y1: yScale(v), y2: yScale(v), class: "grid" }));
      g.appendChild(text(main.x0 - 8, yScale(v) + 4, pct(v), { class: "tick", "text-anchor": "end" }));
    }
    g.appendChild(el("line", { x1: main.x0, x2: main.x1, y1: main.y0, y2: main.y0, class: "axis" }));
    g.appendChild(el("line", { x1: main.x0, x2: main.x0, y1: main.y0, y2: main.y1, class: "axis" }));
    const cy = (main.y0 + main.y1) / 2;
    g.appendChild(text(14, cy, opts.yLabel || "accuracy", { class: "axis-title", "text-anchor": "middle", transform: "rotate(-90 14 " + cy + ")" }));
    svg.appendChild(g);
    const bars = el("g", { class: "series", "data-series": "accuracy" });
    const maxCount = Math.max(1, ...opts.bins.map((b) => b.count));
    for (const b of opts.bins) {
      const x = xScale(b.lo) + 1.5;
      const w = Math.max(1, xScale(b.hi) - xScale(b.lo) - 3);
      const tip =
        "confidence " + pct(b.lo) + "–" + pct(b.hi) + ": " + b.count + " points" +
        (b.count ? ", accuracy " + pct(b.accuracy, 1) + ", mean confidence " + pct(b.confidence, 1) : "");
      if (b.count && b.accuracy !== null) {
        // The bar is the accuracy; the outlined box spans the gap between accuracy and the bin's mean
        // confidence (above the bar: over-confident; inside it: under-confident); the dark tick marks
        // the mean confidence.
        bars.appendChild(el("rect", { x: x, y: yScale(b.accuracy), width: w, height: main.y0 - yScale(b.accuracy), class: "rel-bar" }, [tooltip(tip)]));
        if (b.confidence !== null) {
          const gapTop = Math.max(b.accuracy, b.confidence);
          const gapBottom = Math.min(b.accuracy, b.confidence);
          bars.appendChild(el("rect", { x: x, y: yScale(gapTop), width: w, height: Math.max(0.5, yScale(gapBottom) - yScale(gapTop)), class: "rel-gap" }, [tooltip(tip)]));
          bars.appendChild(el("line", { x1: x, x2: x + w, y1: yScale(b.confidence), y2: yScale(b.confidence), class: "rel-tick" }, [tooltip(tip)]));
        }
      }
      const hy0 = box.y0;
      const h = (b.count / maxCount) * histHeight;
      bars.appendChild(el("rect", { x: x, y: hy0 - h, width: w, height: Math.max(h, b.count ? 1 : 0), class: "rel-hist" }, [tooltip(tip)]));
      if (b.count) {
        bars.appendChild(text(x + w / 2, hy0 - h - 4, String(b.count), { class: "bar-label", "text-anchor": "middle" }));
      }
    }
    svg.appendChild(bars);
    svg.appendChild(
      el("line", { x1: xScale(0), y1: yScale(0), x2: xScale(1), y2: yScale(1), class: "diagonal" }, [tooltip("perfect calibration: accuracy = confidence")])
    );
    const axis = el("g", { class: "axes" });
    axis.appendChild(el("line", { x1: box.x0, x2: box.x1, y1: box.y0, y2: box.y0, class: "axis" }));
    axis.appendChild(text(box.x0 - 8, box.y0 - histHeight / 2 + 4, "points", { class: "tick", "text-anchor": "end" }));
    for (const v of [0, 0.2, 0.4, 0.6, 0.8, 1]) {
      axis.appendChild(el("line", { x1: xScale(v), x2: xScale(v), y1: box.y0, y2: box.y0 + 5, class: "tickmark" }));
      axis.appendChild(text(xScale(v), box.y0 + 19, pct(v), { class: "tick", "text-anchor": "middle" }));
    }
    axis.appendChild(text((box.x0 + box.x1) / 2, box.height - 8, opts.xLabel || "confidence", { class: "axis-title", "text-anchor": "middle" }));
    svg.appendChild(axis);
    return svg;
  }

  /* A horizontal meter: value / max, with an optional marker (e.g. ε). */
  function meter(value, max, opts) {
    const o = opts || {};
    const width = 200;
    const height = 10;
    const svg = el("svg", { viewBox: "0 0 " + width + " " + height, class: "meter", preserveAspectRatio: "none", role: "img", "aria-label": o.label || "meter" });
    svg.appendChild(el("rect", { x: 0, y: 0, width: width, height: height, rx: 5, class: "meter-track" }));
    const share = max > 0 ? Math.max(0, Math.min(1, value / max)) : 0;
    svg.appendChild(el("rect", { x: 0, y: 0, width: share * width, height: height, rx: 5, fill: o.color || "#2563eb" }));
    if (o.marker !== undefined && max > 0) {
      const mx = Math.min(1, o.marker / max) * width;
      svg.appendChild(el("line", { x1: mx, x2: mx, y1: -2, y2: height + 2, stroke: o.markerColor || "#dc2626", "stroke-width": 2 }));
    }
    return svg;
  }

  global.TbalCharts = { lineChart: lineChart, barChart: barChart, reliabilityChart: reliabilityChart, meter: meter, pct: pct, niceTicks: niceTicks };
})(window);
