// The ONNX graph of a BERT-family encoder, in Optimum's layout: inputs input_ids, attention_mask,
// token_type_ids [batch, seq]; output last_hidden_state [batch, seq, hidden] (BertModel), or
// logits [batch, labels] for a sequence classifier (classifier(tanh(pooler(x[CLS])))).
#pragma once

#include "core/error.h"
#include "export/onnx_graph.h"

namespace brisk::onnx_export {

Status build_encoder(GraphParts& parts);

}  // namespace brisk::onnx_export
