#include "parallel/moe/exchange_counters.h"

namespace qwen3moe {

ExchangeCounters::ExchangeCounters(int64_t layers, int64_t experts, bool timed)
    : timed_(timed), layers_(static_cast<size_t>(std::max<int64_t>(layers, 0))) {
  for (LayerExchangeTotals& l : layers_)
    l.expert_tokens.assign(static_cast<size_t>(std::max<int64_t>(experts, 0)), 0);
}

void ExchangeCounters::add_dispatch(int64_t layer, uint64_t bytes, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  if (layer < 0 || layer >= int64_t(layers_.size())) return;
  LayerExchangeTotals& l = layers_[size_t(layer)];
  l.dispatch_bytes += bytes;
  if (timed_) l.dispatch_seconds += seconds;
  ++l.exchanges;
}

void ExchangeCounters::add_combine(int64_t layer, uint64_t bytes, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  if (layer < 0 || layer >= int64_t(layers_.size())) return;
  LayerExchangeTotals& l = layers_[size_t(layer)];
  l.combine_bytes += bytes;
  if (timed_) l.combine_seconds += seconds;
}

void ExchangeCounters::add_expert_tokens(int64_t layer, int64_t expert, uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (layer < 0 || layer >= int64_t(layers_.size())) return;
  auto& e = layers_[size_t(layer)].expert_tokens;
  if (expert >= 0 && expert < int64_t(e.size())) e[size_t(expert)] += n;
}

std::vector<LayerExchangeTotals> ExchangeCounters::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return layers_;
}

}  // namespace qwen3moe
