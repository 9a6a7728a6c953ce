#include "optimize/report_html.h"

#include "report_assets.h"

namespace brisk::recipe {

namespace {

// JSON inside <script>: "</" would end the element early, so it is written "<\/" (the same string
// to a JSON parser).
std::string script_safe(const std::string& json) {
  std::string out;
  out.reserve(json.size());
  for (size_t i = 0; i < json.size(); ++i) {
    out += json[i];
    if (json[i] == '<' && i + 1 < json.size() && json[i + 1] == '/') out += '\\';
  }
  return out;
}

constexpr const char* kStyle = R"css(
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { font-size: 22px; } h3 { font-size: 15px; margin: 22px 0 6px; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
section.chart, section.heatmap { display: inline-block; vertical-align: top; margin-right: 16px; }
)css";

}  // namespace

std::string optimize_report_html(const Json& record) {
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>brisk optimize</title><style>";
  html += kStyle;
  html += "</style></head><body><main id=\"report\"></main>\n<script id=\"record\" type=\"application/json\">";
  html += script_safe(record.dump());
  html += "</script>\n<script>";
  html += report_assets::kChartsJs;
  html += "</script>\n<script>";
  html += report_assets::kOptimizePageJs;
  html += "</script>\n<script>renderOptimize(document.getElementById('report'), "
          "JSON.parse(document.getElementById('record').textContent));</script>\n</body></html>\n";
  return html;
}

}  // namespace brisk::recipe
