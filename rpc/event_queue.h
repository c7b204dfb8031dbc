// The hand-over between the engine thread and one Generate call: the engine's EventSink runs on
// the engine thread and must never block it, so it only appends and notifies; the call's own
// thread waits, drains and writes to the network at its own pace.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "core/engine/engine.h"

namespace qwen3moe::rpc {

class EventQueue {
 public:
  void push(const GenerationEvent& e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(e);
    }
    ready_.notify_one();
  }

  // Moves every queued event into out (oldest first); waits up to `wait` for the first one.
  // Returns false when nothing came in time.
  bool drain(std::deque<GenerationEvent>& out, std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!ready_.wait_for(lock, wait, [&] { return !events_.empty(); })) return false;
    for (auto& e : events_) out.push_back(std::move(e));
    events_.clear();
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<GenerationEvent> events_;
};

}  // namespace qwen3moe::rpc
