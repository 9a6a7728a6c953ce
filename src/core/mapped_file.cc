#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace brisk {

namespace {

// Opens a regular file for reading. O_NONBLOCK: opening a FIFO would otherwise wait for a writer
// (inspect hung on one); directories and devices (/dev/zero) are refused by name.
Result<int> open_regular_file(const std::filesystem::path& path, struct stat& st) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return make_error(path.string() + ": cannot open: " + std::strerror(errno));
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return make_error(path.string() + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(path.string() + (S_ISDIR(st.st_mode) ? ": is a directory, not a file" : ": not a regular file"));
  }
  return fd;
}

}  // namespace

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::filesystem::path& path) {
  struct stat st {};
  BRISK_ASSIGN(fd, open_regular_file(path, st));
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = size_t(st.st_size);
  if (file->size_ > 0) {
    void* p = mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      return make_error(path.string() + ": mmap failed: " + std::strerror(errno));
    }
    file->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return file;
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}

Result<std::string> read_text_file(const std::filesystem::path& path, size_t max_bytes) {
  struct stat st {};
  BRISK_ASSIGN(fd, open_regular_file(path, st));
  if (size_t(st.st_size) > max_bytes) {
    ::close(fd);
    return make_error(path.string() + ": " + std::to_string(st.st_size) + " bytes, more than the " +
                      std::to_string(max_bytes >> 20) + " MiB a text input may have");
  }
  std::string text(size_t(st.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t got = ::read(fd, text.data() + done, text.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      const int err = errno;
      ::close(fd);
      return make_error(path.string() + ": read failed: " + (got < 0 ? std::strerror(err) : "the file shrank"));
    }
    done += size_t(got);
  }
  ::close(fd);
  strip_utf8_bom(text);
  return text;
}

void strip_utf8_bom(std::string& text) {
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);
}

}  // namespace brisk

namespace brisk {

void release_mapped_pages(const void* p, size_t n) {
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (uintptr_t(p) + page - 1) / page * page;
  const uintptr_t end = (uintptr_t(p) + n) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

bool path_exists(const std::filesystem::path& path) noexcept {
  std::error_code ec;
  return std::filesystem::exists(path, ec) && !ec;
}

bool is_directory_path(const std::filesystem::path& path) noexcept {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec) && !ec;
}

}  // namespace brisk
