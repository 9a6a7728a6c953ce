#!/usr/bin/env python3
"""Golden ids for brisk's Unicode normalizers (NFC, NFD, NFKC, NFKD, Lowercase, StripAccents and
sequences of them), from Hugging Face tokenizers.

Takes the bundled model's tokenizer.json (models/sotu-tiny: a byte-level BPE, so any change of
the normalized bytes changes the ids), sets its "normalizer" to each configuration below, encodes
hard strings (decomposed and precomposed letters, compatibility forms, Hangul, canonical
reordering of combining marks, case folding that changes length) and writes

  <out>/expected.json  {"tokenizers_version", "base": "models/sotu-tiny/tokenizer.json",
                        "strings": [...], "normalizers": [{"config": {...}, "ids": [[...], ...]}]}

tests/tokenizer_normalizer_test.cc loads the same tokenizer.json with each normalizer through
brisk and compares ids. Needs python3 and `tokenizers` (the GPU machine has them). Usage:
  python3 scripts/golden/normalizer_fixtures.py [--out DIR]
"""

import argparse
import json
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BASE = "models/sotu-tiny/tokenizer.json"
DEFAULT_OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "normalizers")

NORMALIZERS = [
    {"type": "NFC"},
    {"type": "NFD"},
    {"type": "NFKC"},
    {"type": "NFKD"},
    {"type": "Lowercase"},
    {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}]},
    {"type": "Sequence", "normalizers": [{"type": "NFKD"}, {"type": "StripAccents"}, {"type": "Lowercase"}]},
    {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]},
    {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]},
]

STRINGS = [
    "Cafe\u0301 and caf\u00e9",                      # decomposed vs precomposed e-acute
    "A\u030angstr\u00f6m \u212b \u2126hm",             # A + ring, Angstrom sign, Ohm sign (canonical singletons)
    "\ufb01nance \ufb02ow \u2460 \u00bd \u00b2",       # ligatures, circled one, fraction, superscript
    "\uff28\uff45\uff4c\uff4c\uff4f \uff76\uff80\uff76\uff85",  # fullwidth Latin, halfwidth katakana
    "\ud55c\uad6d\uc5b4 \u1112\u1161\u11ab",            # Hangul syllables and conjoining jamo
    "a\u0323\u0302 a\u0302\u0323 \u1ead",              # combining marks in both orders, precomposed
    "\u039f\u0394\u039f\u03a3 \u0391\u0398\u0397\u039d\u0391",  # Greek capitals (final sigma)
    "\u01c5 \u01c4 \u1e9e STRASSE",                    # titlecase digraph, capital sharp s
    "\u0915\u093c \u0958 \u0627\u0644\u0639\u0631\u0628\u064a\u0629",  # Devanagari nukta, Arabic
    "Se\u00f1or \u00d1and\u00fa \u00c5\u00c6\u00d8 \u0141\u00f3d\u017a",
    "\u2000wide\u2003spaces\u00a0nbsp \u2026 \u2122",  # compatibility spaces, ellipsis, trademark
    "\U0001d400\U0001d401 \u2167 \u33a1",               # mathematical bold, Roman numeral, square m
    "emoji \U0001f469\u200d\U0001f4bb \u00e9\u0301",   # ZWJ sequence, e-acute + extra acute
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    import tokenizers

    with open(os.path.join(ROOT, BASE), encoding="utf-8") as f:
        base = json.load(f)
    results = []
    for config in NORMALIZERS:
        spec = dict(base)
        spec["normalizer"] = config
        tok = tokenizers.Tokenizer.from_str(json.dumps(spec))
        results.append({"config": config, "ids": [tok.encode(s, add_special_tokens=False).ids for s in STRINGS]})
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizers_version": tokenizers.__version__, "base": BASE, "strings": STRINGS,
                   "normalizers": results}, f, ensure_ascii=False, indent=None)
        f.write("\n")
    print(f"wrote {len(NORMALIZERS)} normalizers x {len(STRINGS)} strings to {args.out}")


if __name__ == "__main__":
    main()
