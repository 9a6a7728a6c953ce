#include "ops/backend.h"

#include <string>

namespace brisk {

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    if (data_) owner_->release(data_);
    owner_ = other.owner_;
    data_ = other.data_;
    size_ = other.size_;
    other.owner_ = nullptr;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

Buffer::~Buffer() {
  if (data_) owner_->release(data_);
}

float* Backend::linear_scratch(size_t n_floats) {
  BRISK_CHECK(device() == Device::CPU, std::string(name()) + ": factored (low-rank) layers need this backend's own linear_scratch");
  if (host_linear_scratch_.size() < n_floats) host_linear_scratch_.resize(n_floats);
  return host_linear_scratch_.data();
}

}  // namespace brisk
