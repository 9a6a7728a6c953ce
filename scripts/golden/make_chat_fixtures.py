#!/usr/bin/env python3
"""Expected renderings of the chat templates in tests/fixtures/chat/ (brisk's Jinja subset is
compared against them byte for byte by tests/chat_template_test.cc).

Two engines give the same answers on these templates:

  --engine transformers   transformers' own renderer (what `apply_chat_template(...,
                          tokenize=False)` runs). The reference; run it where transformers is
                          installed (the GPU machine), no network needed:
                              python3 scripts/golden/make_chat_fixtures.py --engine transformers
  --engine jinja2         plain jinja2 set up the way transformers sets it up (sandboxed,
                          trim_blocks, lstrip_blocks, loopcontrols, raise_exception, tojson with
                          ensure_ascii=False and no key sorting, strftime_now). Needs only
                          python3-jinja2; used to seed the file where transformers is absent.

Writes tests/fixtures/chat/expected.json (or --out), recording which engine made it. A render
that fails (raise_exception in the template) is recorded as {"error": message}.
"""

import argparse
import datetime
import json
import os
import platform
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHAT_DIR = os.path.join(REPO, "tests", "fixtures", "chat")

# name -> (file, special tokens the model's tokenizer_config.json defines)
TEMPLATES = {
    "llama-3-instruct": ("llama-3-instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    "llama-3.1-instruct": ("llama-3.1-instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    "llama-2-chat": ("llama-2-chat.jinja", "<s>", "</s>"),
    "mistral-7b-instruct-v0.1": ("mistral-7b-instruct-v0.1.jinja", "<s>", "</s>"),
    "mistral-7b-instruct-v0.3": ("mistral-7b-instruct-v0.3.jinja", "<s>", "</s>"),
    "qwen2.5-instruct": ("qwen2.5-instruct.jinja", None, "<|im_end|>"),
    "gemma-it": ("gemma-it.jinja", "<bos>", "<eos>"),
    "phi-3-mini-instruct": ("phi-3-mini-instruct.jinja", "<s>", "<|endoftext|>"),
    "chatml": ("chatml.jinja", None, "<|im_end|>"),
    "zephyr": ("zephyr.jinja", "<s>", "</s>"),
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}

CONVERSATIONS = {
    "system_user": {"messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello!"},
    ]},
    "user_only": {"messages": [{"role": "user", "content": "What is 2 + 2?"}]},
    "multi_turn": {"messages": [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ]},
    "system_multi_turn": {"messages": [
        {"role": "system", "content": "  Answer briefly.\n"},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another?"},
    ]},
    "unicode": {"messages": [
        {"role": "user", "content": "  Héllo, 世界! 🙂 Ünïcödé — ça va?\n\t"},
        {"role": "assistant", "content": "Très bien, merci ✓ «quotes» \"double\" 'single' \\ back"},
        {"role": "user", "content": "Ελληνικά и русский"},
    ]},
    "bad_alternation": {"messages": [
        {"role": "user", "content": "first"},
        {"role": "user", "content": "second"},
    ]},
    "tool_call": {"tools": [WEATHER_TOOL], "messages": [
        {"role": "system", "content": "You can check the weather."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
            "name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
        {"role": "tool", "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"},
    ]},
}

# Tool conversations only go to the templates written for tools.
TOOL_TEMPLATES = {"llama-3.1-instruct", "qwen2.5-instruct"}


def jinja2_renderer():
    """A renderer equivalent to transformers.utils.chat_template_utils' compiled template."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now

    def render(source, messages, tools, add_generation_prompt, special_tokens):
        template = env.from_string(source)
        return template.render(messages=messages, tools=tools, documents=None,
                               add_generation_prompt=add_generation_prompt, **special_tokens)

    return render, {"jinja2": jinja2.__version__}


def transformers_renderer():
    import jinja2
    import transformers
    from transformers.utils import chat_template_utils

    def render(source, messages, tools, add_generation_prompt, special_tokens):
        rendered, _ = chat_template_utils.render_jinja_template(
            conversations=[messages], tools=tools, chat_template=source,
            add_generation_prompt=add_generation_prompt, **special_tokens)
        return rendered[0]

    return render, {"transformers": transformers.__version__, "jinja2": jinja2.__version__}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=["transformers", "jinja2"], default="transformers")
    parser.add_argument("--out", default=os.path.join(CHAT_DIR, "expected.json"))
    args = parser.parse_args()

    render, versions = transformers_renderer() if args.engine == "transformers" else jinja2_renderer()
    import jinja2

    cases = []
    for name, (file, bos, eos) in TEMPLATES.items():
        with open(os.path.join(CHAT_DIR, file), encoding="utf-8") as f:
            source = f.read()
        # transformers passes the tokenizer's special tokens map: a token it lacks is undefined.
        special = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v is not None}
        for conv_name, conv in CONVERSATIONS.items():
            if "tools" in conv and name not in TOOL_TEMPLATES:
                continue
            for add_generation_prompt in (False, True):
                case = {"template": name, "conversation": conv_name,
                        "add_generation_prompt": add_generation_prompt}
                try:
                    case["output"] = render(source, conv["messages"], conv.get("tools"),
                                            add_generation_prompt, special)
                except jinja2.exceptions.TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)

    result = {
        "generated_by": {"script": "scripts/golden/make_chat_fixtures.py", "engine": args.engine,
                         "versions": versions, "python": platform.python_version()},
        "templates": {name: {"file": file, "bos_token": bos, "eos_token": eos}
                      for name, (file, bos, eos) in TEMPLATES.items()},
        "conversations": CONVERSATIONS,
        "cases": cases,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
        f.write("\n")
    errors = sum("error" in c for c in cases)
    print(f"wrote {args.out}: {len(cases)} cases ({errors} errors) with {args.engine}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
