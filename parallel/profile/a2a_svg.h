// Inline SVG charts for the profiler's report page: bar charts (stacked or grouped) and heat
// maps, with hover tooltips through <title> so the page needs no script and no network.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace qwen3moe::svg {

std::string escape(const std::string& text);
std::string human_bytes(double bytes);  // "1.25 MB"
std::string human_us(double us);        // "840 µs", "12.3 ms", "1.20 s"
std::string fixed(double v, int digits);

struct Series {
  std::string name;
  std::string color;
  std::vector<double> values;  // one per label
};

struct BarChart {
  std::vector<std::string> labels;  // x axis
  std::vector<Series> series;
  bool stacked = true;
  std::function<std::string(double)> format;  // values on the axis and in tooltips
  std::string x_title;
  double reference = -1;  // a dashed horizontal line at this value when >= 0
  std::string reference_label;
  int width = 640, height = 260;
};
std::string bar_chart(const BarChart& c);

struct HeatMap {
  std::vector<std::string> rows, cols;
  std::vector<std::vector<double>> values;   // [rows][cols]
  std::function<std::string(double)> color;  // value -> fill
  std::function<std::string(size_t, size_t)> tooltip;
  std::function<std::string(double)> cell_text;  // text inside cells (empty: none)
  std::string row_title, col_title;
  int col_group = 0;  // a separator line every col_group columns (expert blocks of a rank)
  int max_width = 1240, max_cell = 56, max_cell_height = 40;
  std::string legend;  // SVG fragment drawn under the map
};
std::string heat_map(const HeatMap& h);

// Sequential palette, t in [0, 1]: white to deep blue.
std::string sequential(double t);
// Diverging palette, t in [-1, 1]: blue (cold) through white to red (hot).
std::string diverging(double t);
// A horizontal colour bar with end labels, for a heat map's legend.
std::string color_bar(const std::function<std::string(double)>& color, double from, double to,
                      const std::string& left, const std::string& mid, const std::string& right,
                      int width);

}  // namespace qwen3moe::svg
