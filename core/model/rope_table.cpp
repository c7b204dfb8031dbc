#include "core/model/rope_table.h"

#include <algorithm>
#include <cmath>

namespace qwen3moe {
namespace {

// The pair index at which a wavelength makes `rotations` turns over `window` positions.
double correction_dim(double rotations, double dim, double base, double window) {
  return dim * std::log(window / (rotations * 2 * M_PI)) / (2 * std::log(base));
}

double yarn_mscale(double factor, double m) {
  return factor <= 1 ? 1.0 : 0.1 * m * std::log(factor) + 1.0;
}

}  // namespace

RopeTable rope_table(const ModelConfig& c) {
  const int64_t dim = c.head_dim, half = dim / 2;
  const double base = c.rope_theta;
  RopeTable t;
  t.inv_freq.resize(size_t(half));
  const RopeScaling& y = c.rope_scaling;
  if (y.type != "yarn") {
    for (int64_t i = 0; i < half; ++i)
      t.inv_freq[size_t(i)] = float(1.0 / std::pow(base, double(2 * i) / double(dim)));
    return t;
  }
  // transformers' steps in float32: pos_freqs = base^(2i/d), the two frequency sets, the ramp.
  double low = correction_dim(y.beta_fast, double(dim), base, double(y.original_max_position));
  double high = correction_dim(y.beta_slow, double(dim), base, double(y.original_max_position));
  if (y.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, double(dim - 1));
  if (low == high) high += 0.001;  // a ramp of one step, not a division by zero
  const float factor = float(y.factor);
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = float(2 * i) / float(dim);
    const float pos_freq = float(std::pow(base, double(exponent)));
    const float extrapolated = 1.0f / pos_freq, interpolated = 1.0f / (factor * pos_freq);
    const float ramp = std::clamp(float((double(i) - low) / (high - low)), 0.0f, 1.0f);
    const float keep = 1.0f - ramp;  // the share of the pretrained frequency
    t.inv_freq[size_t(i)] = interpolated * (1.0f - keep) + extrapolated * keep;
  }
  if (y.attention_factor > 0)
    t.scale = float(y.attention_factor);
  else if (y.mscale > 0 && y.mscale_all_dim > 0)
    t.scale = float(yarn_mscale(y.factor, y.mscale) / yarn_mscale(y.factor, y.mscale_all_dim));
  else
    t.scale = float(yarn_mscale(y.factor, 1.0));
  return t;
}

}  // namespace qwen3moe
