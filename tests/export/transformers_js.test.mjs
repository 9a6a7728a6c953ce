// `brisk export --format onnx` loaded by a real client, transformers.js (@huggingface/transformers,
// on onnxruntime-node, CPU): its text-generation pipeline finds the folder's onnx/model<suffix>.onnx
// by dtype, the tokenizer and config beside it, and its greedy continuation must equal brisk's
// generate on the same model -- fp32 (sotu-llama, bf16 weights), brisk's own w4 model as int4
// MatMulNBits ('q4') and a w8 GPT-2 as int8 QDQ ('q8'). Run by ctest (label cli):
//   BRISK_BIN=build/tools/brisk/brisk BRISK_SHARED_DIR=../shared node --test tests/export/transformers_js.test.mjs
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { env, pipeline } from '@huggingface/transformers';

const BRISK = process.env.BRISK_BIN;
const SHARED = process.env.BRISK_SHARED_DIR;
assert.ok(BRISK && SHARED, 'set BRISK_BIN and BRISK_SHARED_DIR');
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'brisk-tjs-'));
after(() => fs.rmSync(WORK, { recursive: true, force: true }));
env.allowRemoteModels = false;  // the folders below, never the Hub
env.localModelPath = WORK + path.sep;

function brisk(...args) {
  const p = spawnSync(BRISK, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(p.status, 0, `brisk ${args.join(' ')}: ${p.stderr}`);
  return p.stdout;
}

const PROMPT = 'The state of the union is';

for (const [name, source, quantizeFlags, dtype] of [['sotu-llama', 'sotu-llama', null, 'fp32'],
                                                    ['sotu-llama-w4', 'sotu-llama', ['--scheme', 'w4', '--asym'], 'q4'],
                                                    ['sotu-gpt2-w8', 'sotu-gpt2', ['--scheme', 'w8'], 'q8']]) {
  test(`${name}: transformers.js (dtype ${dtype}) continues the prompt as brisk generate does`, async () => {
    let model = path.join(SHARED, 'models', source);
    if (quantizeFlags) {
      brisk('quantize', '-m', model, '-o', path.join(WORK, `${name}-brisk`), ...quantizeFlags);
      model = path.join(WORK, `${name}-brisk`);
    }
    brisk('export', '-m', model, '-o', path.join(WORK, name), '--format', 'onnx');
    const want = JSON.parse(brisk('generate', '-m', model, '-p', PROMPT, '-n', '32', '--temp', '0', '--ignore-eos',
                                  '--json')).text;
    const generator = await pipeline('text-generation', name, { dtype, device: 'cpu' });
    const [out] = await generator(PROMPT, { max_new_tokens: 32, min_new_tokens: 32, do_sample: false });
    assert.equal(out.generated_text, PROMPT + want);
    await generator.dispose();
  });
}
