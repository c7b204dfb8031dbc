// DIR/a2a.json: what the operator asks of the all-to-all, per layer and for the whole run.
// Time of one exchange = the slowest rank's wait + transfer (the collective ends when it does);
// GB/s = bytes each rank sent on average / that time, the algbw of nccl-tests and of a2a-bench,
// so the two read side by side; busbw = algbw · (W − 1) / W.
#include <algorithm>
#include <numeric>

#include "kernels/common/check.h"
#include "parallel/profile/a2a_report.h"
#include "parallel/profile/a2a_whatif.h"

namespace qwen3moe {
namespace {

using nlohmann::json;

struct PhaseTotals {
  uint64_t bytes = 0;
  double us = 0;                             // Σ over exchanges of the slowest rank's time
  std::vector<double> wait_us, transfer_us;  // [W] Σ over exchanges, per rank
  std::vector<uint64_t> bytes_per_rank;      // [W] sent
};

struct LayerTotals {
  PhaseTotals dispatch, combine;
  std::vector<std::vector<uint64_t>> matrix;  // [W][W]
};

double gbps(double bytes_per_rank, double us) {
  return us > 0 ? bytes_per_rank / us / 1e3 : 0.0;
}

json placement_json(const Placement& p) {
  return {{"max_over_mean", p.max_over_mean}, {"rank_load", p.rank_load}, {"experts", p.experts}};
}

double max_of(const std::vector<double>& v) {
  return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end());
}

}  // namespace

json a2a_summary(const A2aRecords& r, int whatif_redundant) {
  const int W = r.world;
  const size_t L = r.moe_layer.size();
  const int64_t E = r.num_experts;
  for (int k = 1; k < W; ++k)
    QWEN3MOE_CHECK(r.exchanges[size_t(k)].size() == r.exchanges[0].size(), "profiler: rank ", k,
                   " recorded ", r.exchanges[size_t(k)].size(), " exchanges, rank 0 ",
                   r.exchanges[0].size(), ": the ranks were not in lockstep");

  std::vector<LayerTotals> layers(L);
  for (LayerTotals& lt : layers) {
    for (PhaseTotals* p : {&lt.dispatch, &lt.combine}) {
      p->wait_us.assign(static_cast<size_t>(W), 0.0);
      p->transfer_us.assign(static_cast<size_t>(W), 0.0);
      p->bytes_per_rank.assign(static_cast<size_t>(W), 0);
    }
    lt.matrix.assign(static_cast<size_t>(W), std::vector<uint64_t>(static_cast<size_t>(W), 0));
  }
  // The steps folded out of the detail start the totals; the kept exchanges add to them.
  int64_t folded_exchanges = 0;
  for (size_t l = 0; l < L && !r.folded.empty(); ++l)
    for (int phase = 0; phase < 2; ++phase) {
      PhaseTotals& pt = phase == 0 ? layers[l].dispatch : layers[l].combine;
      pt.us += r.folded[0][l * 2 + size_t(phase)].slowest_us;  // job-wide, the same on every rank
      folded_exchanges += r.folded[0][l * 2 + size_t(phase)].exchanges;
      for (int k = 0; k < W; ++k) {
        const A2aFolded& f = r.folded[size_t(k)][l * 2 + size_t(phase)];
        pt.wait_us[size_t(k)] += f.wait_us;
        pt.transfer_us[size_t(k)] += f.transfer_us;
        for (int p = 0; p < W; ++p) {
          pt.bytes += f.bytes_to[size_t(p)];
          pt.bytes_per_rank[size_t(k)] += f.bytes_to[size_t(p)];
          layers[l].matrix[size_t(k)][size_t(p)] += f.bytes_to[size_t(p)];
        }
      }
    }

  json steps = json::array();
  for (size_t n = 0; n < r.exchanges[0].size(); ++n) {
    const A2aExchange& e0 = r.exchanges[0][n];
    QWEN3MOE_CHECK(e0.layer >= 0 && size_t(e0.layer) < L, "profiler: exchange of layer ", e0.layer,
                   " outside the model's ", L, " layers");
    LayerTotals& lt = layers[size_t(e0.layer)];
    PhaseTotals& pt = e0.phase == "dispatch" ? lt.dispatch : lt.combine;
    std::vector<double> wait(static_cast<size_t>(W)), transfer(static_cast<size_t>(W));
    std::vector<uint64_t> sent(static_cast<size_t>(W), 0);
    double slowest = 0, start = e0.start_us;
    for (int k = 0; k < W; ++k) {
      const A2aExchange& e = r.exchanges[size_t(k)][n];
      QWEN3MOE_CHECK(e.layer == e0.layer && e.phase == e0.phase && e.step == e0.step,
                     "profiler: exchange ", n, " is layer ", e.layer, " ", e.phase, " on rank ", k,
                     " but layer ", e0.layer, " ", e0.phase, " on rank 0");
      QWEN3MOE_CHECK(e.bytes_to.size() == size_t(W), "profiler: rank ", k, " recorded ",
                     e.bytes_to.size(), " peers in a world of ", W);
      wait[size_t(k)] = e.wait_us;
      transfer[size_t(k)] = e.transfer_us;
      slowest = std::max(slowest, e.wait_us + e.transfer_us);
      start = std::min(start, e.start_us);
      for (int p = 0; p < W; ++p) {
        sent[size_t(k)] += e.bytes_to[size_t(p)];
        lt.matrix[size_t(k)][size_t(p)] += e.bytes_to[size_t(p)];
      }
      pt.wait_us[size_t(k)] += e.wait_us;
      pt.transfer_us[size_t(k)] += e.transfer_us;
      pt.bytes_per_rank[size_t(k)] += sent[size_t(k)];
    }
    const uint64_t bytes = std::accumulate(sent.begin(), sent.end(), uint64_t(0));
    pt.bytes += bytes;
    pt.us += slowest;
    steps.push_back({{"step", e0.step},
                     {"layer", e0.layer},
                     {"phase", e0.phase},
                     {"start_us", start},
                     {"bytes", bytes},
                     {"us", slowest},
                     {"bytes_per_rank", sent},
                     {"wait_us", wait},
                     {"transfer_us", transfer}});
  }

  json out_layers = json::array();
  std::vector<std::vector<uint64_t>> matrix(static_cast<size_t>(W),
                                            std::vector<uint64_t>(static_cast<size_t>(W), 0));
  uint64_t total_dispatch = 0, total_combine = 0;
  double total_us = 0, total_wait = 0, total_transfer = 0, bytes_per_rank_total = 0;
  double sum_max[3] = {0, 0, 0}, sum_mean = 0;  // what-if over the run: Σ layer max / Σ mean
  std::vector<double> rank_wait(static_cast<size_t>(W), 0.0),
      rank_transfer(static_cast<size_t>(W), 0.0);
  json worst = nullptr, hottest = nullptr;
  double worst_us = -1, hottest_ratio = 0;
  for (size_t l = 0; l < L; ++l) {
    const LayerTotals& lt = layers[l];
    const std::vector<int64_t>& tokens = r.expert_tokens[l];
    std::vector<double> expert_load(tokens.begin(), tokens.end());
    const int64_t pairs = std::accumulate(tokens.begin(), tokens.end(), int64_t(0));
    const double us = lt.dispatch.us + lt.combine.us;
    const double bytes = double(lt.dispatch.bytes + lt.combine.bytes);
    const double layer_gbps = gbps(bytes / W, us);
    json layer = {{"layer", l},
                  {"moe", bool(r.moe_layer[l])},
                  {"dispatch_bytes", lt.dispatch.bytes},
                  {"combine_bytes", lt.combine.bytes},
                  {"dispatch_us", lt.dispatch.us},
                  {"combine_us", lt.combine.us},
                  {"tokens_per_expert", tokens},
                  {"bytes_matrix", lt.matrix},
                  {"gbps", layer_gbps},
                  {"busbw_gbps", W > 1 ? layer_gbps * (W - 1) / W : 0.0},
                  {"dispatch_gbps", gbps(double(lt.dispatch.bytes) / W, lt.dispatch.us)},
                  {"combine_gbps", gbps(double(lt.combine.bytes) / W, lt.combine.us)},
                  {"expert_imbalance", max_over_mean(expert_load)},
                  {"dispatch_wait_us", lt.dispatch.wait_us},
                  {"dispatch_transfer_us", lt.dispatch.transfer_us},
                  {"combine_wait_us", lt.combine.wait_us},
                  {"combine_transfer_us", lt.combine.transfer_us},
                  {"dispatch_wait_us_max", max_of(lt.dispatch.wait_us)},
                  {"dispatch_transfer_us_max", max_of(lt.dispatch.transfer_us)},
                  {"combine_wait_us_max", max_of(lt.combine.wait_us)},
                  {"combine_transfer_us_max", max_of(lt.combine.transfer_us)}};
    double layer_wait = 0, layer_transfer = 0;
    for (int k = 0; k < W; ++k) {
      const double w = lt.dispatch.wait_us[size_t(k)] + lt.combine.wait_us[size_t(k)];
      const double t = lt.dispatch.transfer_us[size_t(k)] + lt.combine.transfer_us[size_t(k)];
      rank_wait[size_t(k)] += w;
      rank_transfer[size_t(k)] += t;
      layer_wait += w;
      layer_transfer += t;
      for (int p = 0; p < W; ++p) matrix[size_t(k)][size_t(p)] += lt.matrix[size_t(k)][size_t(p)];
    }
    layer["wait_share"] =
        layer_wait + layer_transfer > 0 ? layer_wait / (layer_wait + layer_transfer) : 0.0;
    if (r.moe_layer[l] && E > 0) {
      const PlacementWhatIf w = placement_whatif(tokens, W, whatif_redundant);
      layer["tokens_per_rank"] = w.current.rank_load;
      layer["rank_imbalance"] = w.current.max_over_mean;
      layer["whatif"] = {{"current", placement_json(w.current)},
                         {"balanced", placement_json(w.balanced)},
                         {"redundant", placement_json(w.redundant)}};
      sum_max[0] += max_of(w.current.rank_load);
      sum_max[1] += max_of(w.balanced.rank_load);
      sum_max[2] += max_of(w.redundant.rank_load);
      sum_mean += double(pairs) / W;
      const auto hot = std::max_element(tokens.begin(), tokens.end());
      const double ratio = pairs > 0 ? double(*hot) * double(E) / double(pairs) : 0.0;
      if (pairs > 0 && ratio > hottest_ratio) {
        hottest_ratio = ratio;
        hottest = {{"layer", l},
                   {"expert", hot - tokens.begin()},
                   {"tokens", *hot},
                   {"share", double(*hot) / double(pairs)},
                   {"times_mean", ratio}};
      }
      if (us > worst_us) {
        worst_us = us;
        worst = {{"layer", l}, {"us", us}, {"wait_share", layer["wait_share"]}};
      }
    } else {
      layer["tokens_per_rank"] = std::vector<double>(static_cast<size_t>(W), 0.0);
      layer["rank_imbalance"] = 1.0;
    }
    total_dispatch += lt.dispatch.bytes;
    total_combine += lt.combine.bytes;
    total_us += us;
    total_wait += layer_wait;
    total_transfer += layer_transfer;
    bytes_per_rank_total += bytes / W;
    out_layers.push_back(std::move(layer));
  }

  int64_t detail_steps = 0, last_step = -1;
  for (const A2aExchange& e : r.exchanges[0]) {
    if (e.step != last_step) ++detail_steps;
    last_step = e.step;
  }
  auto ratio = [&](double m) { return sum_mean > 0 ? m / sum_mean : 1.0; };
  const json totals = {
      {"dispatch_bytes", total_dispatch},
      {"combine_bytes", total_combine},
      {"bytes", total_dispatch + total_combine},
      {"a2a_us", total_us},
      {"wait_us", total_wait},
      {"transfer_us", total_transfer},
      {"wait_share",
       total_wait + total_transfer > 0 ? total_wait / (total_wait + total_transfer) : 0.0},
      {"gbps", gbps(bytes_per_rank_total, total_us)},
      {"exchanges", int64_t(r.exchanges[0].size()) + folded_exchanges},
      {"steps", r.folded_steps + detail_steps},
      {"steps_in_detail", detail_steps},  // the last ones (--profile-a2a-steps); "steps" below
      {"worst_layer", worst},
      {"hottest_expert", hottest},
      {"bytes_matrix", matrix},
      {"wait_us_per_rank", rank_wait},
      {"transfer_us_per_rank", rank_transfer}};
  return {{"world_size", W},
          {"tp", r.tp},
          {"dp", r.tp > 0 ? W / r.tp : 1},
          {"num_experts", E},
          {"totals", totals},
          {"whatif",
           {{"redundant_copies", whatif_redundant},
            {"current", ratio(sum_max[0])},
            {"balanced", ratio(sum_max[1])},
            {"redundant", ratio(sum_max[2])}}},
          {"layers", std::move(out_layers)},
          {"steps", std::move(steps)}};
}

}  // namespace qwen3moe
