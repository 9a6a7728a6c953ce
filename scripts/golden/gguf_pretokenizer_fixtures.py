#!/usr/bin/env python3
"""Golden ids for brisk's GGUF pre-tokenizer table (tokenizer.ggml.pre), from Hugging Face tokenizers.

For every row of the table in src/tokenizer/gguf_pre_tokenizers.cc this builds the tokenizer.json
that row stands for: one byte-level BPE vocabulary + merges (trained here, the same for every
row), a pre-tokenizer Sequence of Split(regex, Isolated) steps with the row's published regexes,
then ByteLevel(use_regex=false); and ignore_merges as llama.cpp sets it. It encodes a list of
hard strings with each and writes

  <out>/vocab.json      {"vocab": {token: id}, "merges": ["left right", ...]}
  <out>/expected.json   {"tokenizers_version", "strings": [...],
                         "rows": {row name: [[ids of string 0], ...]}, "regexes": {row name: [...]}}

tests/tokenizer_gguf_pre_test.cc rebuilds each row from a GGUF-like description with the same
vocabulary and merges and tokenizer.ggml.pre = the row name, and compares ids.

The regexes here are written out independently of the C++ table, in Hugging Face's (Oniguruma)
dialect where the original tokenizer.json spelling is known and differs from what PCRE2 accepts
(kimi-k2's `&&` class intersections, bloom's nested class), so the fixture also checks that
brisk's PCRE2 rewrites match the same text.

Needs python3 and `tokenizers` only. Usage:
  python3 scripts/golden/gguf_pretokenizer_fixtures.py [--out DIR] [--corpus FILE] [--merges N]
  python3 scripts/golden/gguf_pretokenizer_fixtures.py --check   # no `tokenizers`: table sanity only
"""

import argparse
import json
import os
import sys

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures",
                           "tokenizer", "gguf-pretokenizers")

# ---------------------------------------------------------------------------------- the table
# Sources as in the C++ table: llama.cpp src/llama-vocab.cpp (regex_exprs per
# LLAMA_VOCAB_PRE_TYPE_*, using the "original regex from tokenizer.json" it quotes where it has
# one), the kimi-k2 tiktoken pattern (Kimi-K2's tokenization_kimi.py, which llama.cpp's
# unicode.cpp hand-codes) and bloom's tokenizer.json Split regex.

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"  # ByteLevel's own
GPT2_LLAMACPP = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
CONTRACTIONS_I = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
CONTRACTIONS_LLAMACPP = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
LLAMA3 = CONTRACTIONS_I + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
JAIS2 = (CONTRACTIONS_I + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
         r"|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)"
         r"|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}")
QWEN2 = CONTRACTIONS_I + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN35 = (CONTRACTIONS_I + r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+"
          r"|\s+(?!\S)|\s+")
UPPER = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]"
LOWER = r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
GPT4O = (r"[^\r\n\p{L}\p{N}]?" + UPPER + "*" + LOWER + "+" + CONTRACTIONS_I + "?"
         r"|[^\r\n\p{L}\p{N}]?" + UPPER + "+" + LOWER + "*" + CONTRACTIONS_I + "?"
         r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
TEKKEN = (r"[^\r\n\p{L}\p{N}]?" + UPPER + "*" + LOWER + "+|[^\r\n\p{L}\p{N}]?" + UPPER + "+" + LOWER + "*"
          r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
DEEPSEEK_LETTERS = (
    r"\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}"
    r"\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}"
    r"\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}"
    r"\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}"
    r"\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}"
    r"\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}"
    r"\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}"
    r"\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}"
    r"\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}"
    r"\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}"
    r"\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}"
    r"\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}"
    r"\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+")
DEEPSEEK_CJK = r"[\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+"
CJK_KANA = r"[\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+"
DEEPSEEK3_WORDS = (r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
                   r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# bloom's tokenizer.json spelling (a class nested in a class, which Oniguruma unions).
BLOOM = " ?[^(\\s|[.,!?\u2026\u3002\uFF0C\u3001\u0964\u06D4\u060C])]+"
HAN_FREE_UPPER = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]"
HAN_FREE_LOWER = r"[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]"
KIMI_K2 = (r"[\p{Han}]+|[^\r\n\p{L}\p{N}]?" + HAN_FREE_UPPER + "*" + HAN_FREE_LOWER + "+" + CONTRACTIONS_I + "?"
           r"|[^\r\n\p{L}\p{N}]?" + HAN_FREE_UPPER + "+" + HAN_FREE_LOWER + "*" + CONTRACTIONS_I + "?"
           r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
AFMOE_DIGITS = r"\p{N}{1,3}(?=(?:\p{N}{3})*(?!\p{N}))"  # llama.cpp's custom \p{AFMoE_digits}, as a regex
AFMOE_SCRIPTS = (r"[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{F900}-\x{FAFF}\x{3040}-\x{309F}\x{30A0}-\x{30FF}"
                 r"\x{FF65}-\x{FF9F}\x{2F00}-\x{2FDF}\x{E00}-\x{E7F}\x{E80}-\x{EFF}\x{1780}-\x{17FF}"
                 r"\x{1000}-\x{109F}\x{AA60}-\x{AA7F}\x{A9E0}-\x{A9FF}\x{AC00}-\x{D7AF}\x{1100}-\x{11FF}]+")
YOUTU_SCRIPTS = (r"[\x{AC00}-\x{D7A3}\x{3131}-\x{318E}]+|[\x{FF01}\x{2026}\x{201C}\x{201D}\x{2018}\x{2019}"
                 r"\x{2014}\x{FF1A}\x{FF1B}\x{FF0C}\x{3001}-\x{303F}\x{FE30}-\x{FE4F}]+|[\x{3105}-\x{312F}]+"
                 r"|[\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+")
YOUTU_WORDS = (r"[^\r\n\p{L}\p{N}]?" + UPPER + "*" + LOWER + "+" + CONTRACTIONS_LLAMACPP + "?"
               r"|[^\r\n\p{L}\p{N}]?" + UPPER + "+" + LOWER + "*" + CONTRACTIONS_LLAMACPP + "?"
               r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# (row name = the C++ row's first name, regexes, ignore_merges). regexes None: ByteLevel's own.
ROWS = [
    ("gpt-2", None, False),
    ("default", [r"[\p{P}\$\+<=>\^~\|]+", GPT2_LLAMACPP, r"\p{N}+", r"[0-9][0-9][0-9]"], False),
    ("llama3", [LLAMA3], True),
    ("dbrx", [LLAMA3], False),
    ("jais-2", [JAIS2], False),
    ("deepseek-llm", [r"[\r\n]", DEEPSEEK_LETTERS,
                      r"\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+",
                      r"\s+$", DEEPSEEK_CJK, r"\p{N}+"], False),
    ("deepseek-coder", [r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", DEEPSEEK_CJK, r"\p{N}"], False),
    ("deepseek-v3", [r"\p{N}{1,3}", CJK_KANA, DEEPSEEK3_WORDS], False),
    ("spark2_5", [r"\p{N}{1,3}", CJK_KANA,
                  r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
                  r"| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+", r"\p{N}"], False),
    ("youtu", [YOUTU_SCRIPTS, YOUTU_WORDS], True),
    ("falcon", [r"[\p{P}\$\+<=>\^~\|`]+", GPT2_LLAMACPP, r"[0-9][0-9][0-9]"], False),
    ("starcoder", [r"\p{N}", GPT2_LLAMACPP], False),
    ("qwen2", [QWEN2], False),
    ("qwen35", [QWEN35], False),
    ("poro-chat", [BLOOM], False),
    ("viking", [BLOOM, r"\p{N}"], False),
    ("tekken", [TEKKEN], True),
    ("chameleon", [r"<sentinel:[0-9]+>", r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", r"([\t\n]|    |  )", r"\p{N}",
                   r"[\p{P}!-/:-@\[-`{-~]", GPT2_LLAMACPP], False),
    ("gpt-4o", [GPT4O], False),
    ("granite-embed-multi-97m", [GPT4O], True),
    ("tiny_aya", [r"\d{1,3}(?=(?:\d{3})*\b)", GPT4O], False),
    ("kimi-k2", [KIMI_K2], False),
    ("superbpe", [r"\p{N}+", r"(?=(\d{3})+(?!\d))"], False),
    ("bailingmoe", [r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]"
                    r"|\s+(?!\S)|\s+"], False),
    ("seed-coder", [CONTRACTIONS_I + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+"
                    r"|\s+(?!\S)|\s+"], False),
    ("ufakzeka", [r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"], False),
    ("afmoe", [AFMOE_DIGITS, AFMOE_SCRIPTS, DEEPSEEK3_WORDS], False),
    ("laguna", [r"[^\n]+|[\n]+", CONTRACTIONS_LLAMACPP + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+"], False),
    ("exaone-moe", [CONTRACTIONS_I + r"|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}"
                    r"| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+"], False),
    ("minicpm5", [r"\p{N}{1,3}", CONTRACTIONS_I + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+"], True),
]

# Strings where pre-tokenizers disagree: digit runs, CJK/kana/Hangul, contractions in any case,
# whitespace runs (long ones for jais-2), newlines, emoji, accents and combining marks, code.
STRINGS = [
    "Hello world, 1234567 and 2024-12-06: 3.14159!",
    "I'm sure you'RE right; they'll say it's DON'T. We'd've I'M",
    "  leading   and   trailing spaces   ",
    "tabs\tand\t\tnewlines\n\nline\r\nend\n",
    "日本語のテキスト 中文字符 한국어 文字abc ｶﾀｶﾅ",
    "café naïve Ångström e\u0301 ÉCOLE ﬁne Ωhm K",
    "emoji 👋🏽 🇫🇷 ❤️ 👨‍👩‍👧 done",
    "HelloWorld camelCase XMLHttpRequest iPhone",
    "<sentinel:12> IMGIMGABZ (a|b), [x]; {y}… $5+3<=>^~|`",
    "مرحبا، दुनिया। Привет мир ۔ ٣٤٥",
    "1 12 123 1234 12345 123456 1234567890 1,234,567.89 ＡＢＣ１２３",
    "x" + " " * 40 + "y" + " " * 600 + "z\n",
    "def f(x):\n    return x ** 2  # square\n\n\tpass\r\n",
    "สวัสดีครับ ພາສາລາວ ភាសាខ្មែរ မြန်မာ",
    "URL https://example.com/a/b?c=1&d=2 -- end...",
    "  \n  \n\n   x",
]

# A few KB of varied text (plain prose, code, numbers, several scripts) to learn merges from.
CORPUS = """\
The quick brown fox jumps over the lazy dog. It's not what they'd expected: we'll see, you're right.
In 2024 the committee met 12 times; attendance rose from 1,234 to 56,789 people (a 4,502% increase).
She said, "Don't worry -- it'll be fine." He replied: 'I'm not so sure...' They've gone home.
Prices: $3.50, $12.99, 100% cotton, 3x faster, 0.5mm, 42nd street, 1st of May, 2nd, 3rd, 4th.
The State of the Union is strong. We must work together, and we will; the people deserve no less.
def tokenize(text):
    words = text.split()
    for i, word in enumerate(words):
        if word.isdigit():
            yield int(word) * 2
        else:
            yield word.lower()
class Vector:
    def __init__(self, x, y):
        self.x, self.y = x, y
    def __add__(self, other):
        return Vector(self.x + other.x, self.y + other.y)
for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }  // dot product
if (x <= 10 && y >= 20 || z != 30) { return -1; } else { return 0; }
SELECT name, COUNT(*) FROM users WHERE age > 21 GROUP BY name ORDER BY 2 DESC;
<html><body><p class="note">Hello &amp; welcome!</p></body></html>
https://www.example.com/path/to/page?query=value&other=123#section
日本語の文章です。東京は日本の首都です。私は毎日コーヒーを飲みます。カタカナとひらがな。
中文的句子。北京是中国的首都。我们每天学习新的知识，这很重要。今天天气很好！
한국어 문장입니다. 서울은 대한민국의 수도입니다. 우리는 매일 공부합니다.
Русский текст: Москва — столица России. Привет, мир! Как дела?
Ελληνικά: Η Αθήνα είναι η πρωτεύουσα της Ελλάδας. Καλημέρα!
العربية: القاهرة هي عاصمة مصر. مرحبا بالعالم، كيف حالك؟
हिन्दी: नई दिल्ली भारत की राजधानी है। नमस्ते दुनिया।
ไทย: กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย สวัสดีครับ
Français : Le café est très bon à Paris. L'été dernier, nous sommes allés à Nîmes.
Deutsch: Die Straße ist schön. Über den Wolken muss die Freiheit wohl grenzenlos sein.
Español: ¿Dónde está la biblioteca? ¡Mañana será otro día! El niño comió piña.
Português: A informação é útil. São Paulo é uma cidade enorme. Ações e reações.
Emoji: 😀 😂 👍 🎉 ❤️ 🚀 🇺🇸 🇯🇵 👨‍👩‍👧‍👦 ✨ 🔥 — symbols: © ® ™ ° ± × ÷ € £ ¥ § ¶ • … ‘quotes’ “double”
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000 10000 123456789 3.14159 2.71828 1e-9 0xFF 0b1010
Whitespace:	tab	separated	values
    indented line
        deeper indented line
Mixed CamelCaseWords and snake_case_words and kebab-case-words and SCREAMING_CASE.
I'M SHOUTING! WE'LL WIN! THEY'VE LOST! SHE'D KNOW! IT'S TRUE! YOU'RE RIGHT! DON'T STOP!
"""


def pre_tokenizer(regexes):
    if regexes is None:
        return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    steps = [{"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": False} for r in regexes]
    steps.append({"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False})
    return {"type": "Sequence", "pretokenizers": steps}


def tokenizer_json(vocab, merges, regexes, ignore_merges):
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
        "pre_tokenizer": pre_tokenizer(regexes), "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges},
    }


def train_vocab(text, n_merges):
    """A byte-level BPE (256 byte symbols + up to n_merges merges) trained with GPT-2's splits."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=len(alphabet) + n_merges, initial_alphabet=alphabet,
                                  show_progress=False, special_tokens=[])
    tok.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [m if isinstance(m, str) else f"{m[0]} {m[1]}" for m in model["merges"]]
    vocab = model["vocab"]
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise SystemExit("trained vocabulary ids are not contiguous")
    return vocab, merges


def check_table():
    """What can be checked without `tokenizers`: unique names, and (with the `regex` module, if
    installed) that every regex compiles in a dialect close to Oniguruma's."""
    names = [name for name, _, _ in ROWS]
    if len(set(names)) != len(names):
        raise SystemExit("duplicate row names")
    try:
        import regex
    except ImportError:
        print(f"{len(ROWS)} rows; `regex` not installed, regexes not compiled")
        return
    import re
    for name, regexes, _ in ROWS:
        for r in regexes or [GPT2]:
            # `regex` lacks \x{...} (all such code points here are non-ASCII, so the literal
            # character is safe); V1 reads nested classes and && as Oniguruma does (kimi-k2, bloom).
            literal = re.sub(r"\\x\{([0-9A-Fa-f]+)\}", lambda m: chr(int(m.group(1), 16)), r)
            regex.compile(literal, regex.V1 if name in ("kimi-k2", "poro-chat", "viking") else 0)
    print(f"{len(ROWS)} rows, every regex compiles with the `regex` module")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--corpus", help="UTF-8 text file to train merges on instead of the built-in text")
    parser.add_argument("--merges", type=int, default=1000, help="number of merges to learn (default: 1000)")
    parser.add_argument("--check", action="store_true", help="check the table only (no `tokenizers` needed)")
    args = parser.parse_args()
    check_table()
    if args.check:
        return
    import tokenizers
    from tokenizers import Tokenizer

    text = open(args.corpus, encoding="utf-8").read() if args.corpus else CORPUS
    vocab, merges = train_vocab(text, args.merges)
    rows, regex_record = {}, {}
    for name, regexes, ignore_merges in ROWS:
        tok = Tokenizer.from_str(json.dumps(tokenizer_json(vocab, merges, regexes, ignore_merges)))
        rows[name] = [tok.encode(s, add_special_tokens=False).ids for s in STRINGS]
        for s, ids in zip(STRINGS, rows[name]):
            if tok.decode(ids) != s:
                raise SystemExit(f"{name}: ids of {s!r} do not decode back")
        regex_record[name] = regexes
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({"vocab": vocab, "merges": merges}, f, ensure_ascii=False)
        f.write("\n")
    # One line per string and per row keeps the file small and its diffs readable.
    def lines(obj):
        return ",\n".join(f" {json.dumps(k, ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}"
                           for k, v in obj.items())
    with open(os.path.join(args.out, "expected.json"), "w", encoding="utf-8") as f:
        f.write(f'{{"tokenizers_version": {json.dumps(tokenizers.__version__)},\n"strings": [\n')
        f.write(",\n".join(" " + json.dumps(s, ensure_ascii=False) for s in STRINGS))
        f.write(f"],\n\"rows\": {{\n{lines(rows)}}},\n\"regexes\": {{\n{lines(regex_record)}}}}}\n")
    json.load(open(os.path.join(args.out, "expected.json"), encoding="utf-8"))  # well-formed
    distinct = len({json.dumps(v) for v in rows.values()})
    print(f"wrote {args.out}: {len(vocab)} tokens, {len(merges)} merges, {len(rows)} rows "
          f"({distinct} distinct id lists) x {len(STRINGS)} strings")


if __name__ == "__main__":
    sys.exit(main())
