// Inline SVG for the report page. Axes get "nice" ticks (1, 2, 5 × 10^k) so values read at a
// glance; long axes label every n-th category so labels never collide.
#include "parallel/profile/a2a_svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace qwen3moe::svg {
namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

double nice_step(double max, int ticks) {
  if (max <= 0) return 1;
  const double raw = max / ticks;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

struct Rgb {
  double r, g, b;
};

std::string mix(const std::vector<Rgb>& stops, double t) {
  t = std::clamp(t, 0.0, 1.0);
  const double x = t * double(stops.size() - 1);
  const size_t i = std::min(stops.size() - 2, size_t(x));
  const double f = x - double(i);
  char buf[16];
  std::snprintf(buf, sizeof(buf), "#%02x%02x%02x",
                int(std::lround(stops[i].r + (stops[i + 1].r - stops[i].r) * f)),
                int(std::lround(stops[i].g + (stops[i + 1].g - stops[i].g) * f)),
                int(std::lround(stops[i].b + (stops[i + 1].b - stops[i].b) * f)));
  return buf;
}

// Black or white text, whichever reads better on the fill "#rrggbb".
std::string ink_on(const std::string& fill) {
  unsigned r = 0, g = 0, b = 0;
  std::sscanf(fill.c_str(), "#%02x%02x%02x", &r, &g, &b);
  const double luma = 0.299 * r + 0.587 * g + 0.114 * b;
  return luma < 140 ? "#ffffff" : "#111827";
}

}  // namespace

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string fixed(double v, int digits) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (std::fabs(b) >= 1000 && u < 4) {
    b /= 1000;
    ++u;
  }
  return fixed(b, u == 0 || b >= 100 ? 0 : b >= 10 ? 1 : 2) + " " + units[u];
}

std::string human_us(double us) {
  if (us < 1000) return fixed(us, us >= 100 ? 0 : 1) + " µs";
  if (us < 1e6) return fixed(us / 1e3, us >= 1e5 ? 0 : us >= 1e4 ? 1 : 2) + " ms";
  return fixed(us / 1e6, 2) + " s";
}

std::string sequential(double t) {
  return mix({{247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}}, t);
}

std::string diverging(double t) {
  return mix({{33, 102, 172}, {146, 197, 222}, {247, 247, 247}, {244, 165, 130}, {178, 24, 43}},
             (t + 1) / 2);
}

std::string color_bar(const std::function<std::string(double)>& color, double from, double to,
                      const std::string& left, const std::string& mid, const std::string& right,
                      int width) {
  std::string s = "<g class=\"legend\">";
  const int n = 40;
  const double w = double(width) / n;
  for (int i = 0; i < n; ++i) {
    const double v = from + (to - from) * (i + 0.5) / n;
    s += "<rect x=\"" + num(i * w) + "\" y=\"0\" width=\"" + num(w + 0.5) +
         "\" height=\"10\" fill=\"" + color(v) + "\"/>";
  }
  s += "<text x=\"0\" y=\"24\">" + escape(left) + "</text>";
  s += "<text x=\"" + num(width / 2.0) + "\" y=\"24\" text-anchor=\"middle\">" + escape(mid) +
       "</text>";
  s += "<text x=\"" + num(width) + "\" y=\"24\" text-anchor=\"end\">" + escape(right) +
       "</text></g>";
  return s;
}

std::string bar_chart(const BarChart& c) {
  const double left = 66, right = 10, top = 30, bottom = c.x_title.empty() ? 26 : 40;
  const double pw = c.width - left - right, ph = c.height - top - bottom;
  const size_t n = c.labels.size();
  double max = c.reference > 0 ? c.reference : 0;
  for (size_t i = 0; i < n; ++i) {
    double stack = 0;
    for (const Series& s : c.series) {
      const double v = i < s.values.size() ? s.values[i] : 0;
      stack = c.stacked ? stack + v : std::max(stack, v);
    }
    max = std::max(max, stack);
  }
  const double step = nice_step(max, 4);
  const double top_value = max > 0 ? std::ceil(max / step - 1e-9) * step : 1;
  auto y = [&](double v) { return top + ph - ph * v / top_value; };

  std::string s = "<svg class=\"chart\" viewBox=\"0 0 " + std::to_string(c.width) + " " +
                  std::to_string(c.height) + "\" width=\"" + std::to_string(c.width) +
                  "\" height=\"" + std::to_string(c.height) + "\">";
  // Grid and y ticks.
  for (double v = 0; v <= top_value + step / 2; v += step) {
    s += "<line class=\"grid\" x1=\"" + num(left) + "\" x2=\"" + num(left + pw) + "\" y1=\"" +
         num(y(v)) + "\" y2=\"" + num(y(v)) + "\"/>";
    s += "<text class=\"tick\" x=\"" + num(left - 6) + "\" y=\"" + num(y(v) + 4) +
         "\" text-anchor=\"end\">" + escape(c.format ? c.format(v) : fixed(v, 1)) + "</text>";
  }
  // Bars.
  const double gw = n > 0 ? pw / double(n) : pw;
  const size_t every = std::max<size_t>(1, size_t(std::ceil(double(n) * 26.0 / pw)));
  for (size_t i = 0; i < n; ++i) {
    const double gx = left + gw * double(i);
    double base = 0;
    const size_t ns = c.series.size();
    const double bw = c.stacked ? gw * 0.72 : gw * 0.8 / double(std::max<size_t>(1, ns));
    for (size_t k = 0; k < ns; ++k) {
      const Series& se = c.series[k];
      const double v = i < se.values.size() ? se.values[i] : 0;
      const double x = c.stacked ? gx + (gw - bw) / 2 : gx + gw * 0.1 + bw * double(k);
      const double y0 = c.stacked ? base : 0;
      const double h = std::max(0.0, y(y0) - y(y0 + v));
      s += "<rect x=\"" + num(x) + "\" y=\"" + num(y(y0 + v)) + "\" width=\"" +
           num(std::max(1.0, bw - (c.stacked ? 0 : 1))) + "\" height=\"" + num(h) + "\" fill=\"" +
           se.color + "\"><title>" +
           escape(c.labels[i] + " · " + se.name + ": " + (c.format ? c.format(v) : fixed(v, 2))) +
           "</title></rect>";
      if (c.stacked) base += v;
    }
    if (i % every == 0)
      s += "<text class=\"tick\" x=\"" + num(gx + gw / 2) + "\" y=\"" + num(top + ph + 15) +
           "\" text-anchor=\"middle\">" + escape(c.labels[i]) + "</text>";
  }
  s += "<line class=\"axis\" x1=\"" + num(left) + "\" x2=\"" + num(left + pw) + "\" y1=\"" +
       num(top + ph) + "\" y2=\"" + num(top + ph) + "\"/>";
  if (c.reference >= 0) {
    s += "<line class=\"ref\" x1=\"" + num(left) + "\" x2=\"" + num(left + pw) + "\" y1=\"" +
         num(y(c.reference)) + "\" y2=\"" + num(y(c.reference)) + "\"/>";
    if (!c.reference_label.empty())
      s += "<text class=\"reflabel\" x=\"" + num(left + pw - 4) + "\" y=\"" +
           num(y(c.reference) - 4) + "\" text-anchor=\"end\">" + escape(c.reference_label) +
           "</text>";
  }
  if (!c.x_title.empty())
    s += "<text class=\"axistitle\" x=\"" + num(left + pw / 2) + "\" y=\"" + num(c.height - 6.0) +
         "\" text-anchor=\"middle\">" + escape(c.x_title) + "</text>";
  // Legend along the top.
  double lx = left;
  for (const Series& se : c.series) {
    s += "<rect x=\"" + num(lx) + "\" y=\"8\" width=\"11\" height=\"11\" rx=\"2\" fill=\"" +
         se.color + "\"/><text class=\"legendtext\" x=\"" + num(lx + 16) + "\" y=\"18\">" +
         escape(se.name) + "</text>";
    lx += 28 + 6.6 * double(se.name.size());
  }
  return s + "</svg>";
}

std::string heat_map(const HeatMap& h) {
  const size_t R = h.rows.size(), C = h.cols.size();
  const double left = 70, top = 22, bottom = 34 + (h.legend.empty() ? 0 : 40);
  const double cw = std::clamp((h.max_width - left - 10) / std::max<double>(1, double(C)), 2.0,
                               double(h.max_cell));
  const double ch = std::clamp(cw, 6.0, double(h.max_cell_height));
  const double W = left + cw * double(C) + 10, H = top + ch * double(R) + bottom;
  std::string s = "<svg class=\"chart\" viewBox=\"0 0 " + num(W) + " " + num(H) + "\" width=\"" +
                  num(W) + "\" height=\"" + num(H) + "\">";
  const size_t col_every = std::max<size_t>(1, size_t(std::ceil(22.0 / cw)));
  const size_t row_every = std::max<size_t>(1, size_t(std::ceil(12.0 / ch)));
  for (size_t r = 0; r < R; ++r) {
    for (size_t c = 0; c < C; ++c) {
      const double v = h.values[r][c];
      const double x = left + cw * double(c), yy = top + ch * double(r);
      s += "<rect x=\"" + num(x) + "\" y=\"" + num(yy) + "\" width=\"" + num(cw + 0.3) +
           "\" height=\"" + num(ch + 0.3) + "\" fill=\"" + h.color(v) + "\"><title>" +
           escape(h.tooltip ? h.tooltip(r, c) : fixed(v, 2)) + "</title></rect>";
      if (h.cell_text && cw >= 40 && ch >= 18) {
        const std::string text = h.cell_text(v);
        if (!text.empty())
          s += "<text class=\"cell\" x=\"" + num(x + cw / 2) + "\" y=\"" + num(yy + ch / 2 + 4) +
               "\" text-anchor=\"middle\" fill=\"" + ink_on(h.color(v)) + "\">" + escape(text) +
               "</text>";
      }
    }
    if (r % row_every == 0)
      s += "<text class=\"tick\" x=\"" + num(left - 6) + "\" y=\"" + num(top + ch * (r + 0.5) + 4) +
           "\" text-anchor=\"end\">" + escape(h.rows[r]) + "</text>";
  }
  for (size_t c = 0; c < C; c += col_every)
    s += "<text class=\"tick\" x=\"" + num(left + cw * (c + 0.5)) + "\" y=\"" + num(top - 6) +
         "\" text-anchor=\"middle\">" + escape(h.cols[c]) + "</text>";
  if (h.col_group > 0)
    for (size_t c = size_t(h.col_group); c < C; c += size_t(h.col_group))
      s += "<line class=\"sep\" x1=\"" + num(left + cw * double(c)) + "\" x2=\"" +
           num(left + cw * double(c)) + "\" y1=\"" + num(top) + "\" y2=\"" +
           num(top + ch * double(R)) + "\"/>";
  const double below = top + ch * double(R);
  if (!h.col_title.empty())
    s += "<text class=\"axistitle\" x=\"" + num(left + cw * double(C) / 2) + "\" y=\"" +
         num(below + 18) + "\" text-anchor=\"middle\">" + escape(h.col_title) + "</text>";
  if (!h.row_title.empty())
    s += "<text class=\"axistitle\" transform=\"translate(14 " + num(top + ch * double(R) / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + escape(h.row_title) + "</text>";
  if (!h.legend.empty())
    s += "<g transform=\"translate(" + num(left) + " " + num(below + 30) + ")\">" + h.legend +
         "</g>";
  return s + "</svg>";
}

}  // namespace qwen3moe::svg
