// A new model as a Hugging Face folder (issue 21; a distillation student, or what `brisk train
// --shape` trains): a base model's (the teacher's) config.json with the shape replaced (layers,
// hidden size, heads, kv heads, ffn: the family's ShapeKeys), the base's tokenizer files, and
// fp32 weights either random (N(0, 0.02) as transformers' initializer_range, norms 1, biases 0)
// or, for the layers named, copied from the teacher (Sheared-LLaMA / Minitron style: student
// layer j starts as teacher layer layers[j]; embeddings, final norm and head come along).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"

namespace brisk::train {

struct StudentShape {
  int64_t layers = 0, hidden = 0, heads = 0, kv_heads = 0, ffn = 0;
  std::string arch;  // "" or the family the base must have ("llama", "gpt2")
};

// "layers=4,hidden=256,heads=4,kv_heads=2,ffn=704[,arch=llama|gpt2]": every key at most once,
// positive whole numbers. `flag` names the option in errors.
Result<StudentShape> parse_student_shape(const std::string& text, const std::string& flag = "--student-shape");
// "0,2,4": the teacher's layer indices.
Result<std::vector<int64_t>> parse_layer_list(const std::string& text);

struct StudentOptions {
  std::filesystem::path teacher;  // the base: a llama / qwen2 / gpt2 folder
  std::filesystem::path out;      // created (absent or empty)
  StudentShape shape;             // zero fields: the teacher's (so layers alone may change)
  std::vector<int64_t> from_teacher_layers;  // empty: random weights
  uint64_t seed = 0;
};

Status write_student(const StudentOptions& options);

}  // namespace brisk::train
