// Streams generated text while watching for stop strings: text that might be the start of a
// stop string is held back until it is known not to be one.
#pragma once

#include <string>
#include <vector>

namespace brisk {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  // Appends text; returns the part now safe to emit. Sets stopped() when a stop string appears
  // (the returned text then ends right before it).
  std::string push(const std::string& text);
  // At the end of generation: everything still held back.
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace brisk
