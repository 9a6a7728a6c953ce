// Read-only memory mapping of a whole file (weights are used in place, never copied).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

#include "core/error.h"

namespace brisk {

class MappedFile {
 public:
  static Result<std::shared_ptr<MappedFile>> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// A whole text file (a regular file of at most max_bytes), a leading UTF-8 byte-order mark
// dropped (as Python's utf-8-sig reads it). Devices, FIFOs and directories are errors.
inline constexpr size_t kMaxTextBytes = size_t(1) << 30;
Result<std::string> read_text_file(const std::filesystem::path& path, size_t max_bytes = kMaxTextBytes);
void strip_utf8_bom(std::string& text);

// Whether `path` exists / is a directory, false when it cannot be told (a symlink loop, no
// permission): never throws, unlike std::filesystem's overloads without an error_code.
bool path_exists(const std::filesystem::path& path) noexcept;
bool is_directory_path(const std::filesystem::path& path) noexcept;


// Drops this process's pages for [p, p + n) of a read-only file mapping once the data has been
// copied elsewhere (the page cache keeps the file; a later read faults it back in). Keeps the
// resident set at one copy of the weights while loading.
void release_mapped_pages(const void* p, size_t n);

}  // namespace brisk
