// DIR/report.html: the page an operator opens after a profiled run. Headline numbers and a
// one-line verdict first (is the all-to-all skew-bound or bandwidth-bound, would rebalancing
// pay), then the plots that back them. Built only from the a2a.json summary, self-contained.
#include <algorithm>
#include <cmath>

#include "parallel/profile/a2a_report.h"
#include "parallel/profile/a2a_svg.h"

namespace qwen3moe {
namespace {

using nlohmann::json;

const char* kDispatch = "#2563eb";
const char* kCombine = "#f59e0b";
const char* kDispatchWait = "#93c5fd";
const char* kDispatchTransfer = "#1d4ed8";
const char* kCombineWait = "#fcd34d";
const char* kCombineTransfer = "#b45309";

const char* kStyle = R"CSS(
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6;color:#111827;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
header{background:#111827;color:#f9fafb;padding:22px 32px 18px}
header h1{margin:0;font-size:22px;font-weight:650}
header .sub{color:#9ca3af;margin-top:4px}
main{padding:20px 32px 40px;max-width:1400px}
.tiles{display:grid;grid-template-columns:repeat(6,1fr);gap:12px;margin-bottom:14px}
.tile{background:#fff;border-radius:10px;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.tile .k{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:#6b7280}
.tile .v{font-size:24px;font-weight:650;margin-top:2px;white-space:nowrap}
.tile .d{font-size:12px;color:#4b5563;margin-top:2px}
.verdict{background:#fff;border-left:4px solid #2563eb;border-radius:6px;padding:10px 14px;margin-bottom:18px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.verdict p{margin:4px 0}
.row{display:grid;grid-template-columns:1fr 1fr;gap:16px;margin-bottom:16px}
.card{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08);overflow-x:auto}
.card h2{font-size:15px;margin:0 0 2px;font-weight:650}
.card .how{color:#6b7280;font-size:12px;margin:0 0 6px}
svg.chart{display:block;max-width:100%;height:auto;font-size:11px}
svg .grid{stroke:#e5e7eb}
svg .axis{stroke:#9ca3af}
svg .ref{stroke:#dc2626;stroke-dasharray:4 3}
svg .reflabel{fill:#dc2626;paint-order:stroke;stroke:#fff;stroke-width:3px}
svg .sep{stroke:#111827;stroke-width:1.5}
svg .tick,svg .legend text{fill:#4b5563}
svg .legendtext{fill:#374151}
svg .axistitle{fill:#374151;font-weight:600}
svg .cell{font-size:11px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:5px 10px;text-align:right;border-bottom:1px solid #e5e7eb}
th{font-size:12px;color:#4b5563;font-weight:600;background:#f9fafb}
td:first-child,th:first-child{text-align:left}
tr.total td{font-weight:650;background:#eff6ff}
.good{color:#047857}.bad{color:#b91c1c}
footer{color:#6b7280;font-size:12px;margin-top:10px}
)CSS";

std::string tile(const std::string& key, const std::string& value, const std::string& detail) {
  return "<div class=\"tile\"><div class=\"k\">" + svg::escape(key) + "</div><div class=\"v\">" +
         svg::escape(value) + "</div><div class=\"d\">" + svg::escape(detail) + "</div></div>";
}

std::string card(const std::string& title, const std::string& how, const std::string& body) {
  return "<div class=\"card\"><h2>" + svg::escape(title) + "</h2><p class=\"how\">" +
         svg::escape(how) + "</p>" + body + "</div>";
}

std::string percent(double share) {
  return svg::fixed(100 * share, share < 0.1 ? 1 : 0) + "%";
}

std::string ratio(double v) {
  return svg::fixed(v, 2) + "×";
}

// GB/s, or MB/s / KB/s when slower (CPU ranks sharing cores), so axes never read "0.00".
std::string gbps_text(double v) {
  if (v >= 1 || v == 0) return svg::fixed(v, v >= 10 || v == 0 ? 0 : 1) + " GB/s";
  if (v >= 1e-3) return svg::fixed(v * 1e3, v >= 1e-2 ? 0 : 1) + " MB/s";
  return svg::fixed(v * 1e6, v >= 1e-5 ? 0 : 1) + " KB/s";
}

std::vector<double> layer_values(const json& layers, const char* key) {
  std::vector<double> v;
  for (const json& l : layers) v.push_back(l[key].get<double>());
  return v;
}

}  // namespace

std::string a2a_report_html(const json& s) {
  const json& t = s["totals"];
  const json& layers = s["layers"];
  const json& whatif = s["whatif"];
  const int W = s["world_size"].get<int>();
  const int tp = s.value("tp", W), dp = tp > 0 ? W / tp : 1;
  auto rank_name = [&](int k) { return a2a_rank_label(k, tp, W); };
  const int64_t E = s["num_experts"].get<int64_t>();
  size_t moe_count = 0;
  for (const json& l : layers) moe_count += l["moe"].get<bool>() ? 1 : 0;
  const double total_us = t["a2a_us"].get<double>();
  const double wait_share = t["wait_share"].get<double>();
  const int R = whatif["redundant_copies"].get<int>();

  std::string h =
      "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<title>All-to-all profile</title><style>";
  h += kStyle;
  h += "</style></head><body><header><h1>All-to-all profile</h1><div class=\"sub\">" +
       std::to_string(W) + (W == 1 ? " rank" : " ranks") +
       (dp > 1 ? " (dp " + std::to_string(dp) + " × tp " + std::to_string(tp) + ")" : "") + " · " +
       std::to_string(E) + " experts · " + std::to_string(layers.size()) + " layers (" +
       std::to_string(moe_count) + " MoE) · " + std::to_string(t["steps"].get<int64_t>()) +
       " steps · " + std::to_string(t["exchanges"].get<int64_t>()) +
       " dispatch/combine exchanges</div></header><main>";

  // Headline tiles.
  h += "<div class=\"tiles\">";
  h += tile("all-to-all bytes", svg::human_bytes(t["bytes"].get<double>()),
            "dispatch " + svg::human_bytes(t["dispatch_bytes"].get<double>()) + " · combine " +
                svg::human_bytes(t["combine_bytes"].get<double>()));
  h += tile("all-to-all time", svg::human_us(total_us),
            gbps_text(t["gbps"].get<double>()) + " per rank (algbw)");
  h +=
      tile("waiting for peers", percent(wait_share), "of rank time in exchanges; rest is transfer");
  if (t["worst_layer"].is_null()) {
    h += tile("worst layer", "–", "no MoE exchanges recorded");
  } else {
    const json& w = t["worst_layer"];
    h += tile("worst layer", "layer " + std::to_string(w["layer"].get<int64_t>()),
              svg::human_us(w["us"].get<double>()) + " (" +
                  percent(total_us > 0 ? w["us"].get<double>() / total_us : 0) + " of a2a), " +
                  percent(w["wait_share"].get<double>()) + " wait");
  }
  if (t["hottest_expert"].is_null()) {
    h += tile("hottest expert", "–", "no tokens routed");
  } else {
    const json& x = t["hottest_expert"];
    h += tile("hottest expert",
              "L" + std::to_string(x["layer"].get<int64_t>()) + " · E" +
                  std::to_string(x["expert"].get<int64_t>()),
              ratio(x["times_mean"].get<double>()) + " its fair share (" +
                  std::to_string(x["tokens"].get<int64_t>()) + " pairs)");
  }
  h += tile("rank load max/mean", ratio(whatif["current"].get<double>()),
            "balanced " + ratio(whatif["balanced"].get<double>()) +
                (R > 0 ? " · +" + std::to_string(R) + " copies " +
                             ratio(whatif["redundant"].get<double>())
                       : std::string()));
  h += "</div>";

  // Verdict.
  h += "<div class=\"verdict\">";
  if (t["exchanges"].get<int64_t>() == 0) {
    h += "<p>No dispatch/combine was recorded (a dense model, or no forward ran).</p>";
  } else {
    if (wait_share >= 0.5)
      h += "<p><b>Skew-bound:</b> " + percent(wait_share) +
           " of the time ranks spend in the all-to-all is waiting for the slowest peer to arrive. "
           "Faster links would not help much; look at the load imbalance and the expert heat "
           "map below.</p>";
    else
      h += "<p><b>Transfer-bound:</b> " + percent(1 - wait_share) +
           " of the time in the all-to-all is moving data, at " +
           gbps_text(t["gbps"].get<double>()) +
           " per rank. Compare with <code>a2a-bench</code> on the same ranks to see how close "
           "this is to what the links give.</p>";
    const double cur = whatif["current"].get<double>(), bal = whatif["balanced"].get<double>();
    const double red = whatif["redundant"].get<double>();
    const double best = R > 0 ? std::min(bal, red) : bal;
    if (cur > 0 && best < cur * 0.95)
      h += "<p><b>Rebalancing would pay:</b> the busiest rank's expert load would fall from " +
           ratio(cur) + " to " + ratio(best) + " of the mean (" + percent(1 - best / cur) +
           " less work on the critical rank)" +
           (R > 0 && red < bal ? ", with " + std::to_string(R) + " hottest experts replicated"
                               : std::string(", by moving experts between ranks")) +
           ".</p>";
    else
      h += "<p><b>Rebalancing would not pay much:</b> the current placement is within 5% of "
           "the balanced one (" +
           ratio(cur) + " vs " + ratio(best) + " max/mean).</p>";
  }
  h += "</div>";

  // Per-layer charts.
  std::vector<std::string> layer_labels;
  for (const json& l : layers) layer_labels.push_back(std::to_string(l["layer"].get<int64_t>()));
  auto by_layer = [&](std::vector<svg::Series> series, bool stacked,
                      std::function<std::string(double)> fmt) {
    svg::BarChart c;
    c.labels = layer_labels;
    c.series = std::move(series);
    c.stacked = stacked;
    c.format = std::move(fmt);
    c.x_title = "layer";
    return c;
  };
  auto bytes_fmt = [](double v) { return svg::human_bytes(v); };
  auto us_fmt = [](double v) { return svg::human_us(v); };

  h += "<div class=\"row\">";
  h +=
      card("Bytes per layer", "All ranks together, over the whole run. Dense layers send nothing.",
           svg::bar_chart(by_layer({{"dispatch", kDispatch, layer_values(layers, "dispatch_bytes")},
                                    {"combine", kCombine, layer_values(layers, "combine_bytes")}},
                                   true, bytes_fmt)));
  h += card("Time per layer",
            "Each exchange counts the slowest rank's wait + transfer (when the collective ends).",
            svg::bar_chart(by_layer({{"dispatch", kDispatch, layer_values(layers, "dispatch_us")},
                                     {"combine", kCombine, layer_values(layers, "combine_us")}},
                                    true, us_fmt)));
  h += "</div><div class=\"row\">";
  h += card("Bandwidth per layer",
            "Bytes each rank sent on average / time (algbw, as a2a-bench reports it).",
            svg::bar_chart(by_layer({{"dispatch", kDispatch, layer_values(layers, "dispatch_gbps")},
                                     {"combine", kCombine, layer_values(layers, "combine_gbps")}},
                                    false, gbps_text)));
  {
    svg::BarChart c = by_layer(
        {{"per rank (tokens on the busiest rank)", "#7c3aed",
          layer_values(layers, "rank_imbalance")},
         {"per expert (hottest expert)", "#db2777", layer_values(layers, "expert_imbalance")}},
        false, [](double v) { return svg::fixed(v, 1) + "×"; });
    c.reference = 1.0;
    c.reference_label = "perfect balance";
    h += card("Load imbalance per layer (max / mean)",
              "Token-expert pairs; 1× is perfectly even. The per-rank figure sets the experts' "
              "critical path and the dispatch wait.",
              svg::bar_chart(c));
  }
  h += "</div><div class=\"row\">";
  {
    std::vector<std::string> ranks;
    std::vector<double> dw(static_cast<size_t>(W), 0.0), dt(static_cast<size_t>(W), 0.0),
        cw(static_cast<size_t>(W), 0.0), ct(static_cast<size_t>(W), 0.0);
    for (int k = 0; k < W; ++k) ranks.push_back(rank_name(k));
    for (const json& l : layers) {
      for (int k = 0; k < W; ++k) {
        dw[size_t(k)] += l["dispatch_wait_us"][size_t(k)].get<double>();
        dt[size_t(k)] += l["dispatch_transfer_us"][size_t(k)].get<double>();
        cw[size_t(k)] += l["combine_wait_us"][size_t(k)].get<double>();
        ct[size_t(k)] += l["combine_transfer_us"][size_t(k)].get<double>();
      }
    }
    svg::BarChart c;
    c.labels = ranks;
    c.series = {{"dispatch wait", kDispatchWait, dw},
                {"dispatch transfer", kDispatchTransfer, dt},
                {"combine wait", kCombineWait, cw},
                {"combine transfer", kCombineTransfer, ct}};
    c.format = us_fmt;
    h += card("Wait vs transfer per rank",
              "Wait: until every peer reached the exchange (counts done). A rank that waits "
              "little is the one the others wait for.",
              svg::bar_chart(c));
  }
  {
    const json& m = t["bytes_matrix"];
    double max = 0;
    svg::HeatMap hm;
    for (int k = 0; k < W; ++k) {
      hm.rows.push_back(rank_name(k));
      hm.cols.push_back(std::to_string(k));
      std::vector<double> row;
      for (int p = 0; p < W; ++p) {
        row.push_back(m[size_t(k)][size_t(p)].get<double>());
        max = std::max(max, row.back());
      }
      hm.values.push_back(row);
    }
    hm.color = [max](double v) { return svg::sequential(max > 0 ? v / max : 0); };
    hm.tooltip = [&hm, &rank_name](size_t r, size_t c) {
      return rank_name(int(r)) + " → " + rank_name(int(c)) + ": " +
             svg::human_bytes(hm.values[r][c]);
    };
    hm.cell_text = [](double v) { return svg::human_bytes(v); };
    hm.row_title = "sender";
    hm.col_title = "receiver rank";
    hm.max_width = 600;
    hm.max_cell = 120;
    hm.max_cell_height = 44;
    hm.legend = svg::color_bar([max](double v) { return svg::sequential(max > 0 ? v / max : 0); },
                               0, max, "0", "", svg::human_bytes(max), 200);
    h += card("Bytes between ranks",
              "Row: sender, column: receiver, dispatch + combine over all layers. The diagonal "
              "stays on the rank (no link).",
              svg::heat_map(hm));
  }
  h += "</div>";

  // Time per step: the prefill (step 0) against the decode steps.
  {
    std::vector<double> dispatch_us, combine_us;
    std::vector<std::string> labels;
    for (const json& st : s["steps"]) {
      const auto step = size_t(st["step"].get<int64_t>());
      if (step >= labels.size()) {
        labels.resize(step + 1);
        dispatch_us.resize(step + 1, 0.0);
        combine_us.resize(step + 1, 0.0);
      }
      (st["phase"] == "dispatch" ? dispatch_us : combine_us)[step] += st["us"].get<double>();
    }
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = std::to_string(i);
    svg::BarChart c;
    c.labels = labels;
    c.series = {{"dispatch", kDispatch, dispatch_us}, {"combine", kCombine, combine_us}};
    c.format = us_fmt;
    c.x_title = "step (0: the prefill of a generate, then one per decoded token)";
    c.width = 1300;
    c.height = 220;
    h += "<div class=\"row\" style=\"grid-template-columns:1fr\">" +
         card("All-to-all time per step", "All layers of one forward, slowest rank per exchange.",
              labels.empty() ? std::string("<p>No steps recorded.</p>") : svg::bar_chart(c)) +
         "</div>";
  }

  // Expert load heat map.
  {
    svg::HeatMap hm;
    for (int64_t e = 0; e < E; ++e) hm.cols.push_back(std::to_string(e));
    std::vector<double> means;
    for (const json& l : layers) {
      if (!l["moe"].get<bool>()) continue;
      hm.rows.push_back("layer " + std::to_string(l["layer"].get<int64_t>()));
      std::vector<double> row;
      double sum = 0;
      for (const json& v : l["tokens_per_expert"]) {
        row.push_back(v.get<double>());
        sum += row.back();
      }
      means.push_back(E > 0 ? sum / double(E) : 0);
      hm.values.push_back(row);
    }
    // Colour by log2(tokens / layer mean), clamped to [1/4, 4]: hot experts red, idle blue.
    std::vector<std::vector<double>> rel = hm.values;
    for (size_t r = 0; r < rel.size(); ++r)
      for (double& v : rel[r]) v = means[r] > 0 ? v / means[r] : 1.0;
    const auto raw = hm.values;
    hm.values = rel;
    hm.color = [](double v) {
      return svg::diverging(std::clamp(std::log2(std::max(v, 1e-9)) / 2, -1.0, 1.0));
    };
    hm.tooltip = [raw, rel, &hm](size_t r, size_t c) {
      return hm.rows[r] + ", expert " + std::to_string(c) + ": " +
             std::to_string(int64_t(raw[r][c])) + " pairs (" + svg::fixed(rel[r][c], 2) +
             "× the mean)";
    };
    hm.cell_text = [](double v) { return svg::fixed(v, 1) + "×"; };
    hm.row_title = "";
    hm.col_title = "expert (black lines: rank boundaries of the current placement)";
    hm.col_group = W > 1 ? int(E / W) : 0;
    hm.max_cell = 64;
    hm.max_cell_height = 26;
    hm.legend = svg::color_bar([](double v) { return svg::diverging(v); }, -1, 1,
                               "≤ ¼× the layer mean", "= mean", "≥ 4× the mean", 420);
    h += card("Expert load per layer",
              "Token-expert pairs each expert received, relative to its layer's mean. Red "
              "columns packed into one rank's block are what rebalancing spreads out.",
              hm.rows.empty() ? std::string("<p>No MoE layers.</p>") : svg::heat_map(hm));
  }

  // What-if table.
  {
    std::string tb =
        "<table><tr><th>layer</th><th>token-expert pairs</th>"
        "<th>current max/mean</th><th>balanced</th>";
    if (R > 0) tb += "<th>+" + std::to_string(R) + " redundant</th>";
    tb += "<th>busiest rank saves</th></tr>";
    auto row = [&](const std::string& name, double pairs, double cur, double bal, double red,
                   bool total) {
      const double best = R > 0 ? std::min(bal, red) : bal;
      const double save = cur > 0 ? 1 - best / cur : 0;
      std::string r = total ? "<tr class=\"total\">" : "<tr>";
      r += "<td>" + svg::escape(name) + "</td><td>" + std::to_string(int64_t(pairs)) + "</td><td>" +
           ratio(cur) + "</td><td>" + ratio(bal) + "</td>";
      if (R > 0) r += "<td>" + ratio(red) + "</td>";
      r += "<td class=\"" + std::string(save >= 0.05 ? "good" : "") + "\">" + percent(save) +
           "</td></tr>";
      return r;
    };
    double all_pairs = 0;
    std::string body;
    for (const json& l : layers) {
      if (!l["moe"].get<bool>() || !l.contains("whatif")) continue;
      double pairs = 0;
      for (const json& v : l["tokens_per_expert"]) pairs += v.get<double>();
      all_pairs += pairs;
      const json& w = l["whatif"];
      body += row("layer " + std::to_string(l["layer"].get<int64_t>()), pairs,
                  w["current"]["max_over_mean"].get<double>(),
                  w["balanced"]["max_over_mean"].get<double>(),
                  w["redundant"]["max_over_mean"].get<double>(), false);
    }
    tb += row("whole run (Σ busiest / Σ mean)", all_pairs, whatif["current"].get<double>(),
              whatif["balanced"].get<double>(), whatif["redundant"].get<double>(), true);
    tb += body + "</table>";
    h += "<div style=\"height:16px\"></div>";
    h += card("Placement what-if",
              "Max/mean token-expert pairs per rank: current contiguous blocks of E/W experts; "
              "the same experts balanced (greedy, E/W per rank); and with the hottest experts "
              "given a second copy that takes half their tokens (--whatif-redundant R).",
              tb);
  }
  h += "<footer>Written by qwen3moe --profile-a2a. Numbers: a2a.json in this folder; timeline "
       "per rank: trace.json (open in ui.perfetto.dev).</footer>";
  h += "</main></body></html>\n";
  return h;
}

}  // namespace qwen3moe
