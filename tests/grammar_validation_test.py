"""Every output sampled under a JSON Schema's grammar is valid, by an outside validator.

tests/grammar_sample draws outputs from random logits (fresh standard normal logits each step, so
only the grammar mask shapes them) over a real tokenizer's vocabulary; each must finish within the
token cap, parse with Python's json and validate with jsonschema's Draft 2020-12 validator with
format checking (date, time, date-time, uuid). Formats that the installed jsonschema cannot check
(date-time and time need the optional rfc3339-validator) are checked here with the standard
library instead, so the verdict does not depend on optional packages.

Environment (ctest sets both): BRISK_GRAMMAR_SAMPLE, the grammar_sample binary; BRISK_SHARED_DIR.
Python 3 standard library plus jsonschema (Debian's python3-jsonschema; scripts/setup.sh)."""
import concurrent.futures
import datetime
import json
import os
import re
import subprocess
import tempfile
import unittest
import uuid

try:
    import jsonschema
except ImportError:  # fail, not skip: a skipped validator would pass every output
    raise SystemExit("grammar_validation_test.py needs the jsonschema module (Debian: python3-jsonschema; "
                     "scripts/setup.sh installs it)")

SAMPLE = os.environ["BRISK_GRAMMAR_SAMPLE"]
SHARED = os.environ["BRISK_SHARED_DIR"]
# sotu-llama and sotu-qwen2 share one vocabulary: each gets its own seeds. sotu-gpt2's differs.
TOKENIZERS = {"sotu-llama": 0, "sotu-qwen2": 1_000_000, "sotu-gpt2": 2_000_000}  # name: first seed
SEEDS_PER_SCHEMA = 130  # x 8 schemas: 1,040 outputs per tokenizer
TEMPERATURE = "1.0"
MAX_TOKENS = "2000"

SCHEMAS = {
    # Objects in arrays in objects; enums; array and string bounds; numbers and integers; optional
    # properties (email, notes, tags).
    "order": {
        "type": "object",
        "properties": {
            "customer": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 12},
                    "email": {"type": "string", "maxLength": 20},
                    "vip": {"type": "boolean"},
                },
                "required": ["name", "vip"],
            },
            "items": {
                "type": "array",
                "minItems": 1,
                "maxItems": 4,
                "items": {
                    "type": "object",
                    "properties": {
                        "sku": {"type": "string", "minLength": 3, "maxLength": 3},
                        "qty": {"type": "integer"},
                        "price": {"type": "number"},
                        "tags": {"type": "array", "maxItems": 2,
                                 "items": {"enum": ["gift", "fragile", 7, None, {"x": [1, "é"]}]}},
                    },
                    "required": ["sku", "qty", "price"],
                },
            },
            "status": {"type": "string", "enum": ["new", "paid", "shipped", None, 3]},  # null, 3: never
            "notes": {"type": "string", "minLength": 2, "maxLength": 5},
        },
        "required": ["customer", "items", "status"],
    },
    # Formats and consts.
    "event": {
        "type": "object",
        "properties": {
            "kind": {"const": "event"},
            "version": {"const": 2},
            "id": {"type": "string", "format": "uuid"},
            "day": {"type": "string", "format": "date"},
            "at": {"type": "string", "format": "date-time"},
            "alarm": {"type": "string", "format": "time"},
            "meta": {"const": {"a": [True, None, 1.5], "b": "q\"uote"}},
        },
        "required": ["kind", "version", "id", "day", "at", "alarm", "meta"],
    },
    # Dates alone, many per output: days of the month and leap years.
    "dates": {"type": "array", "minItems": 6, "maxItems": 6, "items": {"type": "string", "format": "date"}},
    # anyOf over objects with const tags, null, a bounded array, and a type list.
    "shape": {
        "type": "object",
        "properties": {
            "shape": {
                "anyOf": [
                    {"type": "object", "properties": {"kind": {"const": "circle"}, "r": {"type": "number"}},
                     "required": ["kind", "r"]},
                    {"type": "object",
                     "properties": {"kind": {"const": "rect"}, "w": {"type": "integer"}, "h": {"type": "integer"}},
                     "required": ["kind", "w", "h"]},
                    {"type": "null"},
                    {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3},
                ]
            },
            "label": {"type": ["string", "integer", "null"], "maxLength": 4},
        },
        "required": ["shape", "label"],
    },
    # A recursive $ref: the schema bounds no depth; random sampling must still end within the cap.
    "tree": {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2},
                },
                "required": ["value"],
            }
        },
        "$ref": "#/$defs/node",
    },
    # additionalProperties as a schema beside declared properties (an additional key must never be a
    # declared name: a parser keeps the last of two equal keys); keys bounded by propertyNames, since
    # a free key would rarely end (few tokens hold a quote); a $ref to a non-recursive def.
    "config": {
        "$defs": {"flag": {"type": "boolean"}},
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 6},
            "debug": {"$ref": "#/$defs/flag"},
            "limits": {"type": "object", "propertyNames": {"minLength": 1, "maxLength": 3},
                       "properties": {"a": {"type": "null"}, "cpu": {"type": "null"}},
                       "additionalProperties": {"type": "integer"}},
            "flags": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                      "propertyNames": {"enum": ["a", "b", "c", "d"]}, "additionalProperties": {"type": "boolean"}},
        },
        "required": ["name", "limits", "flags"],
        "propertyNames": {"maxLength": 6},
        "additionalProperties": {"type": "array", "items": {"$ref": "#/$defs/flag"}, "maxItems": 2},
    },
    # oneOf with branches told apart by a required const/enum property, by type, and by values.
    "pets": {
        "$defs": {
            "cat": {"type": "object", "properties": {"kind": {"const": "cat"}, "lives": {"type": "integer"}},
                    "required": ["kind", "lives"]},
            "dog": {"type": "object", "properties": {"kind": {"enum": ["dog", "wolf"]},
                                                     "good": {"type": "boolean"}}, "required": ["kind"]},
        },
        "type": "array",
        "minItems": 1,
        "maxItems": 3,
        "items": {"oneOf": [{"$ref": "#/$defs/cat"}, {"$ref": "#/$defs/dog"}, {"type": ["null", "boolean"]},
                            {"enum": [1, "two", [3]]}]},
    },
    # Top-level array with prefixItems and a type list. (No unconstrained value: {} allows a free
    # string, which would rarely end.)
    "tuple": {
        "type": "array",
        "prefixItems": [{"type": "integer"}, {"type": "string", "minLength": 1, "maxLength": 2},
                        {"type": ["boolean", "null", "integer"]}],
        "items": {"type": "number"},
        "maxItems": 5,
    },
}


def format_checker():
    """Draft 2020-12's format checker, with standard-library checks for the formats it lacks. (A bare
    jsonschema.FormatChecker() mixes the drafts: its 'time' is Draft 3's, which has no offset.)"""
    base = getattr(jsonschema.Draft202012Validator, "FORMAT_CHECKER", None) or jsonschema.draft202012_format_checker
    checker = jsonschema.FormatChecker(formats=())
    checker.checkers = dict(base.checkers)
    rfc3339_time = re.compile(r"(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-](\d\d):(\d\d))", re.ASCII | re.IGNORECASE)
    rfc3339_date = re.compile(r"\d{4}-\d\d-\d\d", re.ASCII)

    def valid_time(text):
        m = rfc3339_time.fullmatch(text)
        if not m or int(m[1]) > 23 or int(m[2]) > 59 or int(m[3]) > 60:
            return False
        return m[6] is None or (int(m[6]) <= 23 and int(m[7]) <= 59)

    def valid_date(text):
        if not rfc3339_date.fullmatch(text):
            return False
        try:
            datetime.date.fromisoformat(text)
            return True
        except ValueError:
            return False

    fallbacks = {
        "date": valid_date,
        "time": valid_time,
        "date-time": lambda t: len(t) > 11 and t[10] in "Tt" and valid_date(t[:10]) and valid_time(t[11:]),
        "uuid": lambda t: bool(re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", t)) and bool(uuid.UUID(t)),
    }
    for name, check in fallbacks.items():
        if name not in checker.checkers:
            checker.checks(name)(lambda instance, check=check: not isinstance(instance, str) or check(instance))
    return checker


def sample(tokenizer, name, path):
    proc = subprocess.run([SAMPLE, os.path.join(SHARED, "models", tokenizer), path, str(SEEDS_PER_SCHEMA),
                           TEMPERATURE, str(TOKENIZERS[tokenizer]), MAX_TOKENS], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"grammar_sample {tokenizer} {name} exited {proc.returncode}: {proc.stderr}")
    return [json.loads(line) for line in proc.stdout.split("\n") if line]


class SampledOutputsValidate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.paths = {}
        for name, schema in SCHEMAS.items():
            jsonschema.Draft202012Validator.check_schema(schema)
            cls.paths[name] = os.path.join(cls.tmp.name, name + ".json")
            with open(cls.paths[name], "w") as f:
                json.dump(schema, f)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check_tokenizer(self, tokenizer):
        checker = format_checker()
        jobs = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for name in SCHEMAS:
                jobs[name] = pool.submit(sample, tokenizer, name, self.paths[name])
        validated = 0
        for name, job in jobs.items():
            validator = jsonschema.Draft202012Validator(SCHEMAS[name], format_checker=checker)
            lines = job.result()
            self.assertEqual(len(lines), SEEDS_PER_SCHEMA, f"{tokenizer} {name}: one line per seed")
            for out in lines:
                where = f"{tokenizer}, schema {name}, seed {out['seed']}: {out['text']!r}"
                self.assertFalse(out["dead_end"], f"the grammar allowed no token; {where}")
                self.assertTrue(out["complete"], f"no end within {MAX_TOKENS} tokens ({out['tokens']}); {where}")
                self.assertTrue(out["valid_utf8"], f"not UTF-8; {where}")
                try:
                    value = json.loads(out["text"])
                except json.JSONDecodeError as e:
                    self.fail(f"not JSON ({e}); {where}")
                errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)]
                self.assertEqual(errors, [], f"invalid; {where}")
                validated += 1
        print(f"{tokenizer}: {validated} outputs valid over {len(SCHEMAS)} schemas")

    def test_sotu_llama(self):
        self.check_tokenizer("sotu-llama")

    def test_sotu_qwen2(self):
        self.check_tokenizer("sotu-qwen2")

    def test_sotu_gpt2(self):
        self.check_tokenizer("sotu-gpt2")


if __name__ == "__main__":
    unittest.main()
