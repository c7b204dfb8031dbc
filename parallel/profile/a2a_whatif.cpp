// Placement what-if: greedy longest-processing-time assignment with a fixed number of slots per
// rank, then pairwise swaps off the busiest rank while they lower it. LPT alone can leave an
// obviously better placement on the table with few experts per rank (the cases small tests and
// small models have), and a few swaps close most of that gap at negligible cost.
#include "parallel/profile/a2a_whatif.h"

#include <algorithm>
#include <numeric>

#include "kernels/common/check.h"

namespace qwen3moe {
namespace {

struct Item {
  int64_t expert;
  double load;
};

bool holds(const std::vector<Item>& rank_items, int64_t expert) {
  return std::any_of(rank_items.begin(), rank_items.end(),
                     [&](const Item& i) { return i.expert == expert; });
}

double sum(const std::vector<Item>& items) {
  double s = 0;
  for (const Item& i : items) s += i.load;
  return s;
}

Placement to_placement(const std::vector<std::vector<Item>>& ranks) {
  Placement p;
  for (const auto& r : ranks) {
    p.rank_load.push_back(sum(r));
    std::vector<int64_t> ids;
    for (const Item& i : r) ids.push_back(i.expert);
    std::sort(ids.begin(), ids.end());
    p.experts.push_back(std::move(ids));
  }
  p.max_over_mean = max_over_mean(p.rank_load);
  return p;
}

// Copies of one expert on the same rank would be pointless, so every step keeps them apart.
Placement balance(std::vector<Item> items, int world) {
  const size_t slots = (items.size() + size_t(world) - 1) / size_t(world);
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.load > b.load; });
  std::vector<std::vector<Item>> ranks(static_cast<size_t>(world));
  std::vector<double> load(static_cast<size_t>(world), 0.0);
  for (const Item& it : items) {
    int best = -1;
    for (int pass = 0; pass < 2 && best < 0; ++pass) {  // pass 1 only if every rank holds a copy
      for (int r = 0; r < world; ++r) {
        const auto& ri = ranks[size_t(r)];
        if (ri.size() >= slots || (pass == 0 && holds(ri, it.expert))) continue;
        if (best < 0 || load[size_t(r)] < load[size_t(best)]) best = r;
      }
    }
    ranks[size_t(best)].push_back(it);
    load[size_t(best)] += it.load;
  }

  // Swaps (or moves into a free slot) between the busiest rank and any other, best first.
  for (int iter = 0; iter < 10000; ++iter) {
    const int a = int(std::max_element(load.begin(), load.end()) - load.begin());
    double best_peak = load[size_t(a)];
    int best_b = -1;
    int64_t best_i = -1, best_j = -1;  // j == -1: move i into a free slot of b
    for (int b = 0; b < world; ++b) {
      if (b == a) continue;
      const auto& A = ranks[size_t(a)];
      const auto& B = ranks[size_t(b)];
      for (size_t i = 0; i < A.size(); ++i) {
        for (int64_t j = -1; j < int64_t(B.size()); ++j) {
          if (j < 0 && B.size() >= slots) continue;
          const double lj = j < 0 ? 0.0 : B[size_t(j)].load;
          const double delta = A[i].load - lj;
          if (delta <= 0) continue;
          const double peak = std::max(load[size_t(a)] - delta, load[size_t(b)] + delta);
          if (peak >= best_peak - 1e-9) continue;
          const bool i_fits =
              A[i].expert == (j < 0 ? -1 : B[size_t(j)].expert) || !holds(B, A[i].expert);
          const bool j_fits =
              j < 0 || A[i].expert == B[size_t(j)].expert || !holds(A, B[size_t(j)].expert);
          if (!i_fits || !j_fits) continue;
          best_peak = peak;
          best_b = b;
          best_i = int64_t(i);
          best_j = j;
        }
      }
    }
    if (best_b < 0) break;
    auto& A = ranks[size_t(a)];
    auto& B = ranks[size_t(best_b)];
    const Item moved = A[size_t(best_i)];
    if (best_j < 0) {
      A.erase(A.begin() + best_i);
      B.push_back(moved);
    } else {
      A[size_t(best_i)] = B[size_t(best_j)];
      B[size_t(best_j)] = moved;
    }
    load[size_t(a)] = sum(A);
    load[size_t(best_b)] = sum(B);
  }
  return to_placement(ranks);
}

}  // namespace

double max_over_mean(const std::vector<double>& values) {
  if (values.empty()) return 1.0;
  const double total = std::accumulate(values.begin(), values.end(), 0.0);
  const double mean = total / double(values.size());
  if (mean <= 0) return 1.0;
  return *std::max_element(values.begin(), values.end()) / mean;
}

PlacementWhatIf placement_whatif(const std::vector<int64_t>& expert_load, int world,
                                 int redundant) {
  const int64_t E = int64_t(expert_load.size());
  QWEN3MOE_CHECK(world > 0 && E % world == 0, "placement what-if: ", E,
                 " experts cannot be split over ", world, " ranks");
  QWEN3MOE_CHECK(redundant >= 0 && redundant <= E, "--whatif-redundant ", redundant,
                 " must be in [0, ", E, "] (the number of experts)");
  PlacementWhatIf w;
  w.redundant_copies = redundant;
  std::vector<Item> items;
  for (int64_t e = 0; e < E; ++e) items.push_back({e, double(expert_load[size_t(e)])});

  std::vector<std::vector<Item>> blocks(static_cast<size_t>(world));
  const int64_t per = E / world;
  for (int64_t e = 0; e < E; ++e) blocks[size_t(e / per)].push_back(items[size_t(e)]);
  w.current = to_placement(blocks);
  w.balanced = balance(items, world);

  // The R hottest (ties: lower id) get a second copy; tokens split evenly between the copies.
  std::vector<Item> hot = items;
  std::stable_sort(hot.begin(), hot.end(),
                   [](const Item& a, const Item& b) { return a.load > b.load; });
  std::vector<Item> split;
  for (int64_t i = 0; i < E; ++i) {
    if (i < redundant) {
      split.push_back({hot[size_t(i)].expert, hot[size_t(i)].load / 2});
      split.push_back({hot[size_t(i)].expert, hot[size_t(i)].load / 2});
    } else {
      split.push_back(hot[size_t(i)]);
    }
  }
  w.redundant = balance(split, world);
  return w;
}

}  // namespace qwen3moe
