// TrainGym run report: draws Plotly charts from the run data embedded in the page (no network access).
"use strict";

const DATA = JSON.parse(document.getElementById("run-data").textContent);
const KNOB_SHORT = {lr: "lr", weight_decay: "wd", aug_level: "aug", neuron_scale: "scale"};
const CONFIG = {displaylogo: false, responsive: true, displayModeBar: false};
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

async function loadPlotly() {
  // plotly.js ships gzip-compressed inside the page (the full bundle alone is ~4.8 MB); inflate it in memory.
  const packed = document.getElementById("plotly-gz").textContent.trim();
  const bytes = Uint8Array.from(atob(packed), (c) => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  const code = await new Response(stream).text();
  const script = document.createElement("script");
  script.text = code;
  document.head.appendChild(script);
}

function moveText(move) {
  if (!move) return "—";
  return DATA.knobs.map((k, i) => `${KNOB_SHORT[k] || k}${move[i] > 0 ? "+1" : move[i] < 0 ? "-1" : "0"}`).join(" ");
}

// Plotly renders a subset of HTML in text and labels: names and texts from the run are data, never markup.
function esc(text) { return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }

function steps(n) { return Array.from({length: n}, (_, i) => i); }

function layout(title, extra) {
  return Object.assign({title: {text: title, font: {size: 14}}, margin: {l: 60, r: 20, t: 40, b: 30}, height: 320,
                        xaxis: {title: {text: "env step"}}, legend: {orientation: "h", y: -0.35},
                        hovermode: "closest"}, extra || {});
}

// A chart div shows either a Plotly plot or a one-line note; switching must not wipe a live plot's DOM.
function note(el, text) { Plotly.purge(el); el.textContent = text; }
function clearNote(el) { if (!el._fullLayout) el.textContent = ""; }

function policyColor(policy) { return COLORS[DATA.policies.indexOf(policy) % COLORS.length]; }

function drawLearningCurve() {
  const curve = DATA.learning_curve;
  const el = document.getElementById("chart-curve");
  if (!curve) { note(el, "No periodic evaluations in this run (learning_curve.csv missing)."); return; }
  const traces = [
    {x: curve.timesteps, y: curve.ci_high, mode: "lines", line: {width: 0}, showlegend: false, hoverinfo: "skip"},
    {x: curve.timesteps, y: curve.ci_low, mode: "lines", line: {width: 0}, fill: "tonexty",
     fillcolor: "rgba(31,119,180,0.2)", name: "95% CI", hoverinfo: "skip"},
    {x: curve.timesteps, y: curve.test_accuracy, mode: "lines+markers", name: DATA.focus || "agent",
     line: {color: COLORS[0]}},
  ];
  Object.entries(curve.baselines).forEach(([name, value], k) => {
    traces.push({x: [curve.timesteps[0], curve.timesteps[curve.timesteps.length - 1]], y: [value, value],
                 mode: "lines", name, line: {dash: "dash", color: COLORS[(k + 1) % COLORS.length]}});
  });
  Plotly.newPlot(el, traces, layout("Learning curve: held-out test accuracy during training",
    {xaxis: {title: {text: "agent env steps"}}, yaxis: {title: {text: "test accuracy"}}}), CONFIG);
}

function drawHparams(episode) {
  const panels = [["chart-lr", "lr", "Learning rate", "log"], ["chart-wd", "weight_decay", "Weight decay", "log"],
                  ["chart-aug", "aug_level", "Augmentation level", "linear"]];
  for (const [id, key, title, type] of panels) {
    const traces = Object.entries(episode.policies).map(([policy, s]) => ({
      x: steps(s[key].length), y: s[key], mode: "lines+markers", name: policy,
      line: {color: policyColor(policy), width: policy === DATA.focus ? 3 : 1.5,
             dash: policy === DATA.focus ? "solid" : "dot"},
      marker: {size: policy === DATA.focus ? 7 : 4},
    }));
    Plotly.react(id, traces, layout(`${title}: ${DATA.focus} vs baselines`, {yaxis: {type, title: {text: key}}}),
                 CONFIG);
  }
}

function drawMetrics(episode) {
  const focus = episode.policies[DATA.focus];
  const accTraces = [];
  const lossTraces = [];
  if (focus) {
    accTraces.push({x: steps(focus.train_acc.length), y: focus.train_acc, mode: "lines+markers",
                    name: `${DATA.focus} train acc`, line: {color: COLORS[0], dash: "dot"}});
    accTraces.push({x: steps(focus.val_accuracy.length), y: focus.val_accuracy, mode: "lines+markers",
                    name: `${DATA.focus} val acc`, line: {color: COLORS[0], width: 3}});
    lossTraces.push({x: steps(focus.train_loss.length), y: focus.train_loss, mode: "lines+markers",
                     name: "train loss", line: {color: COLORS[1], dash: "dot"}});
    lossTraces.push({x: steps(focus.val_loss.length), y: focus.val_loss, mode: "lines+markers",
                     name: "val loss", line: {color: COLORS[1], width: 3}});
  }
  for (const [policy, s] of Object.entries(episode.policies)) {
    if (policy === DATA.focus) continue;
    accTraces.push({x: steps(s.val_accuracy.length), y: s.val_accuracy, mode: "lines", name: `${policy} val acc`,
                    line: {color: policyColor(policy), width: 1, dash: "dot"}, visible: "legendonly"});
  }
  // Neuron and training events as markers on the focus policy's validation accuracy.
  if (focus && episode.events.length) {
    const byType = {};
    for (const e of episode.events) {
      const step = e.step === null ? 0 : e.step;
      (byType[e.type] = byType[e.type] || []).push({x: step, y: focus.val_accuracy[Math.min(step, focus.val_accuracy.length - 1)],
        text: `${esc(e.type)} at step ${step}` + (e.layer ? `<br>layer ${esc(e.layer)}` : "") +
              (e.ids.length ? `<br>neurons ${e.ids.join(", ")}` : "")});
    }
    const symbols = ["x", "diamond", "triangle-up", "star", "square", "cross"];
    Object.entries(byType).forEach(([type, pts], k) => accTraces.push({
      x: pts.map((p) => p.x), y: pts.map((p) => p.y), text: pts.map((p) => p.text), hoverinfo: "text",
      mode: "markers", name: `event: ${type}`, marker: {symbol: symbols[k % symbols.length], size: 12,
      color: COLORS[(k + 3) % COLORS.length], line: {width: 1, color: "#333"}}}));
  }
  Plotly.react("chart-acc", accTraces, layout("Accuracy and events", {yaxis: {title: {text: "accuracy"}}}), CONFIG);
  Plotly.react("chart-loss", lossTraces, layout("Loss", {yaxis: {title: {text: "loss"}, type: "log"}}), CONFIG);
}

function drawDiagnosis(episode) {
  const el = document.getElementById("chart-diagnosis");
  const table = document.getElementById("diagnosis-table");
  table.replaceChildren();
  const diagnosed = episode.steps.filter((s) => s.diagnosis);
  if (!episode.steps.length) {
    note(el, "No per-step trajectories in this run directory (trajectories.jsonl missing).");
    return;
  }
  if (!diagnosed.length) {
    note(el, `${DATA.focus} ran without the diagnosis channel (no 'diagnosis' observation key): ` +
                     "no advisor findings to show; the table lists the applied moves.");
  } else {
    clearNote(el);
    const x = [], y = [], text = [], color = [];
    for (const s of diagnosed) {
      const agrees = moveText(s.diagnosis.suggested) === moveText(s.applied);
      for (const finding of s.diagnosis.findings) {
        x.push(s.step); y.push(esc(finding)); color.push(agrees ? "#2ca02c" : "#ff7f0e");
        text.push(`step ${s.step}: ${esc(s.diagnosis.text)}<br>suggested: ${moveText(s.diagnosis.suggested)}` +
                  `<br>applied: ${moveText(s.applied)}`);
      }
    }
    Plotly.react(el, [{x, y, text, hoverinfo: "text", mode: "markers", name: "finding",
                       marker: {size: 14, color, line: {width: 1, color: "#333"}}}],
                 layout("Diagnosis timeline (green: applied move = suggested move, orange: differs)",
                        {yaxis: {type: "category", automargin: true}, showlegend: false}), CONFIG);
  }
  const head = table.insertRow();
  for (const h of ["step", "findings", "diagnosis", "suggested move", "applied move"]) {
    const th = document.createElement("th"); th.textContent = h; head.appendChild(th);
  }
  for (const s of episode.steps) {
    const row = table.insertRow();
    const d = s.diagnosis;
    const cells = [s.step, d ? d.findings.join(", ") : "—", d ? d.text : "—", d ? moveText(d.suggested) : "—",
                   moveText(s.applied)];
    cells.forEach((c) => { row.insertCell().textContent = String(c); });
    if (d && moveText(d.suggested) !== moveText(s.applied)) row.className = "differs";
  }
}

function drawNeurons(episode) {
  const el = document.getElementById("chart-neurons");
  const n = episode.neurons;
  if (!n.rows.length) { note(el, "No flagged neurons recorded for this episode."); return; }
  clearNote(el);
  Plotly.react(el, [{type: "heatmap", x: n.steps, y: n.rows.map(esc), z: n.z, colorscale: "YlOrRd", hoverongaps: false,
                     colorbar: {title: {text: "score"}}}],
               layout("Flagged neurons per layer (|activation × gradient| share on validation errors)",
                      {height: Math.max(260, 60 + 14 * n.rows.length), yaxis: {type: "category", automargin: true}}),
               CONFIG);
}

function drawTokens(episode) {
  const section = document.getElementById("tokens-section");
  const el = document.getElementById("chart-tokens");
  const tokens = [...new Set(episode.steps.flatMap((s) => s.tokens.map((t) => t.token)))];
  if (DATA.modality !== "text") { section.hidden = true; return; }
  section.hidden = false;
  if (!tokens.length) { note(el, "No over-relevant tokens were flagged in this episode."); return; }
  clearNote(el);
  const x = episode.steps.map((s) => s.step);
  const z = tokens.map((tok) => episode.steps.map((s) => { const t = s.tokens.find((u) => u.token === tok); return t ? t.share : null; }));
  const text = tokens.map((tok) => episode.steps.map((s) => { const t = s.tokens.find((u) => u.token === tok); return t ? `z ${t.z}` : ""; }));
  // Masking of flagged tokens starts at the first step with augmentation on after a token was flagged.
  const firstFlag = episode.steps.find((s) => s.tokens.length);
  const masked = episode.steps.find((s) => firstFlag && s.step >= firstFlag.step && s.aug_level > 0);
  const shapes = masked ? [{type: "line", x0: masked.step - 0.5, x1: masked.step - 0.5, y0: -0.5,
                            y1: tokens.length - 0.5, line: {color: "#000", width: 2, dash: "dash"}}] : [];
  const annotations = masked ? [{x: masked.step - 0.5, y: tokens.length - 0.5, yanchor: "bottom", showarrow: false,
                                 text: "before masking | after masking"}] : [];
  Plotly.react(el, [{type: "heatmap", x, y: tokens.map(esc), z, text, texttemplate: "%{text}", colorscale: "Reds",
                     hoverongaps: false, colorbar: {title: {text: "relevance share"}}}],
               layout("Flagged tokens: relevance share on diagnostic-buffer errors (cells: z-score)",
                      {shapes, annotations, height: Math.max(240, 80 + 28 * tokens.length),
                       yaxis: {type: "category", automargin: true}}), CONFIG);
}

function drawEpisode(position) {
  const episode = DATA.episodes[position];
  const focus = episode.policies[DATA.focus];
  document.getElementById("episode-outcome").textContent = Object.entries(episode.policies)
    .map(([p, s]) => `${p}: test acc ${s.test_accuracy}${s.diverged ? " (diverged)" : ""}`).join(" · ");
  drawHparams(episode);
  drawMetrics(episode);
  drawDiagnosis(episode);
  drawNeurons(episode);
  drawTokens(episode);
  document.body.dataset.episode = String(episode.instance_index);
  return focus;
}

async function main() {
  await loadPlotly();
  drawLearningCurve();
  const select = document.getElementById("episode");
  DATA.episodes.forEach((e, k) => {
    const option = document.createElement("option");
    const focus = e.policies[DATA.focus];
    option.value = String(k);
    option.textContent = `instance ${e.instance_index}` + (focus ? ` (${DATA.focus} test acc ${focus.test_accuracy})` : "");
    select.appendChild(option);
  });
  select.addEventListener("change", () => drawEpisode(Number(select.value)));
  if (DATA.episodes.length) drawEpisode(0);
  else document.getElementById("episode-outcome").textContent = "No per-episode data (episodes.jsonl missing).";
  document.body.dataset.ready = "1";
}

main().catch((error) => { console.error(error); document.body.dataset.ready = "error"; });
