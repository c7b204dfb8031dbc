// DIR/trace.json: Chrome trace-event JSON (loadable in ui.perfetto.dev and chrome://tracing).
// One process per rank with one track, complete ("X") events for the model's phases and each
// exchange split into its wait and transfer parts, all on rank 0's clock (sync_clock), shifted
// so the run starts at 0.
#include <algorithm>
#include <limits>

#include "parallel/profile/a2a_report.h"

namespace qwen3moe {

nlohmann::json a2a_trace(const A2aRecords& r) {
  using nlohmann::json;
  double t0 = std::numeric_limits<double>::infinity();
  for (int k = 0; k < r.world; ++k) {
    for (const A2aExchange& e : r.exchanges[size_t(k)]) t0 = std::min(t0, e.start_us);
    for (const A2aSpan& s : r.spans[size_t(k)]) t0 = std::min(t0, s.start_us);
  }
  if (t0 == std::numeric_limits<double>::infinity()) t0 = 0;

  json events = json::array();
  for (int k = 0; k < r.world; ++k) {
    const std::string name = "rank " + std::to_string(k);
    events.push_back({{"name", "process_name"},
                      {"ph", "M"},
                      {"pid", k},
                      {"tid", 0},
                      {"args", {{"name", name}}}});
    events.push_back({{"name", "process_sort_index"},
                      {"ph", "M"},
                      {"pid", k},
                      {"tid", 0},
                      {"args", {{"sort_index", k}}}});
    events.push_back(
        {{"name", "thread_name"}, {"ph", "M"}, {"pid", k}, {"tid", 0}, {"args", {{"name", name}}}});
    for (const A2aSpan& s : r.spans[size_t(k)]) {
      events.push_back({{"name", s.name},
                        {"cat", "compute"},
                        {"ph", "X"},
                        {"pid", k},
                        {"tid", 0},
                        {"ts", s.start_us - t0},
                        {"dur", s.dur_us},
                        {"args", {{"layer", s.layer}, {"step", s.step}}}});
    }
    for (const A2aExchange& e : r.exchanges[size_t(k)]) {
      uint64_t bytes = 0;
      for (uint64_t b : e.bytes_to) bytes += b;
      const json args = {
          {"layer", e.layer}, {"step", e.step}, {"bytes", bytes}, {"bytes_to", e.bytes_to}};
      events.push_back({{"name", e.phase + " wait"},
                        {"cat", "a2a"},
                        {"ph", "X"},
                        {"pid", k},
                        {"tid", 0},
                        {"ts", e.start_us - t0},
                        {"dur", e.wait_us},
                        {"args", args}});
      events.push_back({{"name", e.phase + " transfer"},
                        {"cat", "a2a"},
                        {"ph", "X"},
                        {"pid", k},
                        {"tid", 0},
                        {"ts", e.start_us + e.wait_us - t0},
                        {"dur", e.transfer_us},
                        {"args", args}});
    }
  }
  return {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}};
}

}  // namespace qwen3moe
