// Renders a parsed template. Scoping follows jinja2: each loop iteration and each macro call
// gets its own frame (a `set` inside a loop is gone at the next iteration and after the loop,
// which is why templates use namespace()); `if` does not. Undefined names render as "" and are
// falsy; reading an attribute of one is an error, as with jinja2's default Undefined.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "serve/jinja_ast.h"

namespace brisk::jinja {

// Budgets that stop hostile or fuzzed templates (endless loops, huge outputs, deep recursion)
// with an error instead of a hang or a crash.
struct RenderLimits {
  int64_t max_steps = 1'000'000;  // nodes run plus expressions evaluated; real templates need ~50 per message
  size_t max_output_bytes = size_t{64} << 20;
  int max_call_depth = 64;  // nested macro calls
  // Steps bound the nodes run, not the work in each (range() builds up to 100,000 items, a string
  // operation touches up to 64 MiB), so a template within its steps could still run for hours;
  // published templates render in well under a millisecond, the step budget's worst case in ~1 s.
  std::chrono::milliseconds max_time{2000};
};

// Throws TemplateError (with the line where it happened) on a render error.
std::string render_template(const NodeList& nodes, const ValueDict& globals, const RenderLimits& limits);

}  // namespace brisk::jinja
