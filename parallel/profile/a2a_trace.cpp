// DIR/trace.json: Chrome trace-event JSON (loadable in ui.perfetto.dev and chrome://tracing).
// One process per rank with one track, complete ("X") events for the model's phases and each
// exchange split into its wait and transfer parts, all on rank 0's clock (sync_clock), shifted
// so the run starts at 0. Timestamps are whole microseconds, each boundary rounded once
// (an event's end is its rounded end, not a rounded start plus a rounded length), so spans
// that touch on the clock touch in the trace and never overlap by rounding.
#include <algorithm>
#include <cmath>
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

  // [begin, end) in µs since t0 as integers: ts and dur of an "X" event.
  auto interval = [t0](double begin_us, double end_us) {
    const int64_t b = std::llround(begin_us - t0), e = std::llround(end_us - t0);
    return std::pair<int64_t, int64_t>{b, std::max<int64_t>(e - b, 0)};
  };
  json events = json::array();
  for (int k = 0; k < r.world; ++k) {
    const std::string name = a2a_rank_label(k, r.tp, r.world);
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
      const auto [ts, dur] = interval(s.start_us, s.start_us + s.dur_us);
      events.push_back({{"name", s.name},
                        {"cat", "compute"},
                        {"ph", "X"},
                        {"pid", k},
                        {"tid", 0},
                        {"ts", ts},
                        {"dur", dur},
                        {"args", {{"layer", s.layer}, {"step", s.step}}}});
    }
    for (const A2aExchange& e : r.exchanges[size_t(k)]) {
      uint64_t bytes = 0;
      for (uint64_t b : e.bytes_to) bytes += b;
      const json args = {
          {"layer", e.layer}, {"step", e.step}, {"bytes", bytes}, {"bytes_to", e.bytes_to}};
      const double wait_end = e.start_us + e.wait_us;
      const auto [wait_ts, wait_dur] = interval(e.start_us, wait_end);
      const auto [xfer_ts, xfer_dur] = interval(wait_end, wait_end + e.transfer_us);
      events.push_back({{"name", e.phase + " wait"},
                        {"cat", "a2a"},
                        {"ph", "X"},
                        {"pid", k},
                        {"tid", 0},
                        {"ts", wait_ts},
                        {"dur", wait_dur},
                        {"args", args}});
      events.push_back({{"name", e.phase + " transfer"},
                        {"cat", "a2a"},
                        {"ph", "X"},
                        {"pid", k},
                        {"tid", 0},
                        {"ts", xfer_ts},
                        {"dur", xfer_dur},
                        {"args", args}});
    }
  }
  return {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}};
}

}  // namespace qwen3moe
