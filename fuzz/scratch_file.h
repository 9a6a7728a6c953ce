// Why: the safetensors and GGUF readers take a path and memory-map it (tensors are views into the
// mapping, so the mapping is the reader's input), so a fuzz input reaches them as a real file.
// One file per process, rewritten for every input: libFuzzer may run several processes at once.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace brisk::fuzz {

class ScratchFile {
 public:
  explicit ScratchFile(const std::string& extension)
      : path_(std::filesystem::temp_directory_path() /
              ("brisk-fuzz-" + std::to_string(::getpid()) + extension)) {}
  ~ScratchFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  // Replaces the file's contents with the input; returns its path.
  const std::filesystem::path& write(const uint8_t* data, size_t size) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
    return path_;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace brisk::fuzz
