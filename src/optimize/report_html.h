// The report page of a `brisk optimize` record: one self-contained HTML file (no network) that
// carries the record as JSON and draws its tables, frontier charts and heat maps as inline SVG with
// src/report/charts.js and optimize_page.js, embedded at build time.
#pragma once

#include <string>

#include "formats/json_file.h"

namespace brisk::recipe {

std::string optimize_report_html(const Json& record);

}  // namespace brisk::recipe
