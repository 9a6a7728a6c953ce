// Why: a safetensors file is untrusted input (a downloaded checkpoint), and its header decides
// where every tensor view points. Past bugs: a shape whose byte size overflowed to 0 (F32 [2^62]),
// overlapping or aliased data offsets, a tensor named twice, a header length off by one. The
// reader must return an error or views that lie inside the file; reading every viewed byte lets
// ASan catch a view that does not.
#include <cstddef>
#include <cstdint>

#include "formats/safetensors.h"
#include "scratch_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static brisk::fuzz::ScratchFile scratch(".safetensors");
  auto file = brisk::SafetensorsFile::open(scratch.write(data, size));
  if (!file.ok()) return 0;
  uint64_t checksum = 0;  // every byte of every view is read, so ASan sees a view past the mapping
  for (const brisk::NamedTensor& named : file.value().tensors()) {
    const auto* bytes = static_cast<const uint8_t*>(named.tensor.data);
    for (size_t i = 0; i < named.tensor.nbytes(); ++i) checksum += bytes[i];
  }
  for (const auto& [key, value] : file.value().metadata()) checksum += key.size() + value.size();
  volatile uint64_t sink = checksum;
  (void)sink;
  return 0;
}
