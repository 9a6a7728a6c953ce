"""Tokenizer golden fixtures for brisk (imported by make_fixtures.py).

Writes, under <out>/tokenizer/:
  expected-<name>.json     ids / ids_special / decoded for every string in strings.json
  spm-bpe-legacy/          small SentencePiece-style BPE tokenizer.json (+ tokenizer_config.json)
  spm-bpe-metaspace/       same vocabulary, Metaspace pre-tokenizer shape

Tokenizers covered:
  sotu-llama, sotu-gpt2, sotu-qwen2   byte-level BPE tokenizer.json files of the shared models
  spm-bpe-legacy, spm-bpe-metaspace   trained here (vocab 600) in the two shapes Llama-2-era
                                      checkpoints ship (byte_fallback, <0xNN> byte pieces)
  llama2-spm                          python sentencepiece on the Llama-2 tokenizer.model, plus
                                      the ids of transformers' converted fast tokenizer ("hf_ids")
"""

import json
import os
import shutil
import tempfile

SPIECE = "\u2581"  # '▁', SentencePiece's visible space
SPM_SPECIALS = ["<unk>", "<s>", "</s>"]
SPM_VOCAB_SIZE = 600  # 3 specials + 256 byte pieces + 341 trained pieces
TRAIN_BYTES = 204800  # first ~200 KB of sotu-train.txt, cut at a line end


def _write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def _cases_from_hf_tokenizers(tok, strings):
    """Encode every string with a `tokenizers.Tokenizer`.

    "decoded" keeps special tokens (skip_special_tokens=False) so it round-trips the ids
    exactly; "decoded_skip_special" is the library default (skip_special_tokens=True).
    """
    cases = []
    for text in strings:
        ids = tok.encode(text, add_special_tokens=False).ids
        ids_special = tok.encode(text, add_special_tokens=True).ids
        cases.append({
            "text": text,
            "ids": ids,
            "ids_special": ids_special,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
        })
    return cases


def _read_training_text(path):
    """First TRAIN_BYTES of the training text, cut back to the last newline."""
    with open(path, "rb") as f:
        raw = f.read(TRAIN_BYTES)
    raw = raw[: raw.rfind(b"\n") + 1]
    return raw.decode("utf-8")


def _train_spm_style_vocab(train_text):
    """Train a BPE vocabulary the way SentencePiece splits words (▁ starts a word).

    Returns the serialized tokenizer as a dict with the vocabulary rebuilt in Llama-2 order:
    <unk>=0, <s>=1, </s>=2, <0x00>..<0xFF>=3..258, then trained pieces in training order.
    The byte pieces are plain vocabulary entries (not added tokens), as in Llama-2.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    # Training only: split before every ▁ so merges never cross a word boundary.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPIECE, prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=SPM_VOCAB_SIZE - 256,
        special_tokens=SPM_SPECIALS,
        limit_alphabet=100,
        show_progress=False,
    )
    tok.train_from_iterator(train_text.splitlines(), trainer=trainer)

    d = json.loads(tok.to_str())
    trained = d["model"]["vocab"]
    vocab = {name: i for i, name in enumerate(SPM_SPECIALS)}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for name, _ in sorted(trained.items(), key=lambda kv: kv[1]):
        if name not in vocab:
            vocab[name] = len(vocab)
    d["model"]["vocab"] = vocab
    d["model"].update(unk_token="<unk>", byte_fallback=True, fuse_unk=True, dropout=None)
    d["added_tokens"] = [
        {"id": i, "content": name, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, name in enumerate(SPM_SPECIALS)
    ]
    return d


def _build_spm_shape(base, shape):
    """Dress the trained vocabulary in one of the two shipped Llama-2-era pipelines."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors

    tok = Tokenizer.from_str(json.dumps(base))
    tok.post_processor = processors.TemplateProcessing(
        single="<s>:0 $A:0", pair="<s>:0 $A:0 <s>:1 $B:1", special_tokens=[("<s>", 1)])
    if shape == "legacy":
        # Llama-2 / TinyLlama style: normalizer does the ▁ work, no pre-tokenizer.
        tok.normalizer = normalizers.Sequence([
            normalizers.Prepend(SPIECE), normalizers.Replace(" ", SPIECE)])
        tok.decoder = decoders.Sequence([
            decoders.Replace(SPIECE, " "), decoders.ByteFallback(), decoders.Fuse(),
            decoders.Strip(" ", 1, 0)])
    else:
        # Newer Mistral style: Metaspace pre-tokenizer, prefix only on the first section.
        meta = dict(replacement=SPIECE, prepend_scheme="first", split=False)
        tok.pre_tokenizer = pre_tokenizers.Metaspace(**meta)
        tok.decoder = decoders.Metaspace(**meta)
    d = json.loads(tok.to_str())
    if shape == "legacy":
        d["pre_tokenizer"] = None  # drop the training-time Metaspace
    else:
        d["normalizer"] = None
    return d


def _spm_tokenizer_config(shape):
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": None,
        "legacy": shape == "legacy",
        "model_max_length": 2048,
        "clean_up_tokenization_spaces": False,
        "tokenizer_class": "LlamaTokenizer",
    }


def _hf_agreement(folder, cases):
    """How many cases transformers' AutoTokenizer reproduces from the saved folder (info only)."""
    try:
        from transformers import AutoTokenizer
        t = AutoTokenizer.from_pretrained(folder)
        same = sum(t.encode(c["text"], add_special_tokens=True) == c["ids_special"] for c in cases)
        return {"class": type(t).__name__, "agree_ids_special": same, "of": len(cases)}
    except Exception as e:  # informational only
        return {"error": repr(e)[:500]}


def _convert_llama2_with_transformers(model_file):
    """Try the ways transformers 5 may turn a SentencePiece .model into a fast tokenizer.

    Returns (method, tokenizer, errors). A tokenizer that does not hold the full 32000-piece
    vocabulary is treated as a failed conversion.
    """
    import transformers

    tmp = tempfile.mkdtemp()
    shutil.copy(model_file, os.path.join(tmp, "tokenizer.model"))
    cfg = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
           "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False}
    _write_json(os.path.join(tmp, "tokenizer_config.json"), cfg)

    attempts = []
    if hasattr(transformers, "LlamaTokenizerFast"):
        attempts.append(("LlamaTokenizerFast(vocab_file=..., from_slow=True)",
                         lambda: transformers.LlamaTokenizerFast(vocab_file=model_file, from_slow=True)))
    attempts.append(("AutoTokenizer.from_pretrained(dir with tokenizer.model)",
                     lambda: transformers.AutoTokenizer.from_pretrained(tmp)))
    attempts.append(("LlamaTokenizer.from_pretrained(dir with tokenizer.model)",
                     lambda: transformers.LlamaTokenizer.from_pretrained(tmp)))
    errors = []
    for method, make in attempts:
        try:
            t = make()
            if len(t) < 32000:
                raise ValueError("converted vocabulary has only %d entries" % len(t))
            return method, t, errors
        except Exception as e:
            errors.append("%s: %r" % (method, e))
    return None, None, errors


def _llama2_spm_expected(model_file, strings):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=model_file)
    bos = sp.bos_id()
    cases = []
    for text in strings:
        ids = sp.encode(text)  # add_bos false; "<|endoftext|>", "<s>" are plain text here
        cases.append({"text": text, "ids": ids, "ids_special": [bos] + ids, "decoded": sp.decode(ids)})
    out = {"name": "llama2-spm", "source": "sentencepiece " + spm.__version__ + " on llama2-tokenizer/tokenizer.model",
           "cases": cases}

    method, t, errors = _convert_llama2_with_transformers(model_file)
    out["hf_method"] = method
    out["hf_errors"] = errors
    if t is not None:
        out["hf_class"] = type(t).__name__
        backend = getattr(t, "backend_tokenizer", None)
        if backend is not None:
            pipe = json.loads(backend.to_str())
            out["hf_pipeline"] = {k: pipe.get(k) for k in ("normalizer", "pre_tokenizer", "decoder", "post_processor")}
        agree = 0
        for c in cases:
            c["hf_ids"] = t.encode(c["text"], add_special_tokens=False)
            c["hf_ids_special"] = t.encode(c["text"], add_special_tokens=True)
            agree += c["hf_ids"] == c["ids"]
        out["hf_agree"] = {"ids": agree, "of": len(cases)}
    return out


def make_tokenizer_fixtures(shared, out, strings_path, log):
    """Write every tokenizer fixture. Each tokenizer is independent: one failing is logged."""
    from tokenizers import Tokenizer

    with open(strings_path, encoding="utf-8") as f:
        strings = json.load(f)
    tdir = os.path.join(out, "tokenizer")
    os.makedirs(tdir, exist_ok=True)
    shutil.copy(strings_path, os.path.join(tdir, "strings.json"))
    errors = []

    def guarded(name, fn):
        try:
            fn()
            log("tokenizer %s: ok" % name)
        except Exception as e:
            import traceback
            traceback.print_exc()
            errors.append("%s: %r" % (name, e))

    def shared_model(name):
        path = os.path.join(shared, "models", name, "tokenizer.json")
        tok = Tokenizer.from_file(path)
        _write_json(os.path.join(tdir, "expected-%s.json" % name),
                    {"name": name, "source": "models/%s/tokenizer.json" % name,
                     "cases": _cases_from_hf_tokenizers(tok, strings)})

    for name in ("sotu-llama", "sotu-gpt2", "sotu-qwen2"):
        guarded(name, lambda name=name: shared_model(name))

    state = {}

    def train():
        text = _read_training_text(os.path.join(shared, "data", "text", "sotu-train.txt"))
        state["base"] = _train_spm_style_vocab(text)
        state["train_chars"] = len(text)

    guarded("spm-bpe training", train)

    def spm_shape(shape):
        name = "spm-bpe-" + shape
        folder = os.path.join(tdir, name)
        os.makedirs(folder, exist_ok=True)
        d = _build_spm_shape(state["base"], shape)
        path = os.path.join(folder, "tokenizer.json")
        Tokenizer.from_str(json.dumps(d)).save(path)
        _write_json(os.path.join(folder, "tokenizer_config.json"), _spm_tokenizer_config(shape))
        tok = Tokenizer.from_file(path)  # goldens come from the file exactly as saved
        cases = _cases_from_hf_tokenizers(tok, strings)
        _write_json(os.path.join(tdir, "expected-%s.json" % name), {
            "name": name,
            "source": "tokenizer/%s/tokenizer.json (trained on the first %d chars of sotu-train.txt)"
                      % (name, state["train_chars"]),
            "vocab_size": tok.get_vocab_size(),
            "transformers_autotokenizer": _hf_agreement(folder, cases),
            "cases": cases,
        })

    if "base" in state:
        for shape in ("legacy", "metaspace"):
            guarded("spm-bpe-" + shape, lambda shape=shape: spm_shape(shape))

    def llama2():
        model_file = os.path.join(shared, "models", "llama2-tokenizer", "tokenizer.model")
        _write_json(os.path.join(tdir, "expected-llama2-spm.json"), _llama2_spm_expected(model_file, strings))

    guarded("llama2-spm", llama2)
    return errors
