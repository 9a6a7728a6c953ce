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

# Small templates that pin down one behaviour each (rendered with messages=[] plus `vars`). A
# snippet expected to fail records only that it failed: brisk's messages name the line instead of
# copying jinja2's wording, except for raise_exception, whose message is compared exactly.
SNIPPET_VARS = {
    "xs": ["a", "b", "c"], "n": 7, "f": 2.5, "d": {"k": "v", "n": 1, "nested": {"x": [1, 2]}},
    "ms": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None},
           {"role": "user", "content": " é\n"}],
    "text": "  Hello, World!  ", "empty": "", "nothing": None,
}
SNIPPETS = [
    "{{ 1 + 2 * 3 - 4 / 2 }}|{{ 7 // -2 }}|{{ -7 % 3 }}|{{ 2 ** 3 ** 2 }}|{{ 10 / 4 }}|{{ 1e3 }}|{{ 0.1 * 3 }}",
    "{{ 'a' ~ n ~ f ~ nothing ~ true ~ undefined_var }}|{{ n ~ '' }}",
    r"""{{ xs }}|{{ d }}|{{ nothing }}|{{ [1.0, 'it\'s', 'q"'] }}|{{ (1, 2) }}|{{ 'say "hi"' ~ '' }}""",
    "{{ xs[0] }}{{ xs[-1] }}{{ xs[1:] }}{{ xs[:1] }}{{ xs[::2] }}{{ xs[::-1] }}{{ xs[5] }}{{ text[2:7] }}",
    "{{ d.k }}{{ d['n'] }}{{ d.nested.x[1] }}{{ d.missing }}{{ d.get('missing', 'dflt') }}{{ d.get('k') }}",
    "{{ d.missing.deeper }}",
    "{{ undefined_var.attr }}",
    "{% for x in xs %}{{ loop.index }}/{{ loop.length }}{{ loop.first }}{{ loop.last }}{{ loop.revindex }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %}",
    "{% for x in xs if x != 'a' %}{{ loop.index0 }}{{ x }}{% else %}none{% endfor %}|{% for x in [] %}x{% else %}empty{% endfor %}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in d %}{{ k }}{% endfor %}|{% for k, v in d | items %}{{ k }}{% endfor %}",
    "{% for x in xs %}{% for y in xs %}{% if y == x %}{% break %}{% endif %}{{ y }}{% endfor %}|{% endfor %}",
    "{% for x in xs %}{% if loop.first %}{% continue %}{% endif %}{{ x }}{% endfor %}",
    "{% set total = 0 %}{% for x in xs %}{% set total = total + 1 %}{{ total }}{% endfor %}|{{ total }}",
    "{% set ns = namespace(count=0, last=none) %}{% for m in ms %}{% set ns.count = ns.count + 1 %}{% set ns.last = m.role %}{% endfor %}{{ ns.count }}{{ ns.last }}",
    "{% if n > 5 %}big{% elif n > 2 %}mid{% else %}small{% endif %}|{{ 'y' if n is odd else 'n' }}|{{ 'z' if false }}",
    "{{ n > 5 and 'yes' }}|{{ 0 or 'fallback' }}|{{ not nothing }}|{{ 1 < n <= 7 }}|{{ 'b' in xs }}|{{ 'q' not in 'abc' }}|{{ 'k' in d }}",
    "{{ nothing is none }}{{ undefined_var is defined }}{{ d is mapping }}{{ xs is iterable }}{{ text is string }}{{ n is number }}{{ f is float }}{{ n is integer }}{{ n is divisibleby 7 }}{{ xs is sequence }}{{ true is boolean }}",
    "{{ text | trim }}|{{ text | upper }}|{{ text | lower }}|{{ 'hELLO wORLD' | capitalize }}|{{ 'hello big-world' | title }}|{{ text | length }}",
    "{{ xs | join(', ') }}|{{ xs | first }}{{ xs | last }}|{{ xs | length }}|{{ xs | list }}|{{ xs | reverse | join }}|{{ 'abc' | list }}",
    "{{ undefined_var | default('d1') }}|{{ empty | default('d2') }}|{{ empty | default('d3', true) }}|{{ nothing | d('d4') }}",
    "{{ '42' | int + 1 }}|{{ 'x' | int }}|{{ 3.9 | int }}|{{ '2.5' | float }}|{{ 5 | string ~ '!' }}|{{ -3 | abs }}",
    "{{ text | replace('l', 'L') }}|{{ text | replace('l', '', 1) }}",
    "{{ ms | selectattr('role', 'equalto', 'user') | list | length }}|{{ ms | rejectattr('role', 'equalto', 'user') | map(attribute='role') | join }}|{{ ms | map(attribute='role') | unique | list }}",
    "{{ [3, 1, 2] | sort }}|{{ [3, 1, 2] | sort(reverse=true) }}|{{ [1, 2, 3] | sum }}|{{ [4, 9, 2] | max }}{{ [4, 9, 2] | min }}|{{ xs | select('ne', 'b') | list }}",
    "{{ d | tojson }}|{{ ms | tojson }}|{{ 'é\\u2028\\x01\"\\\\/' | tojson }}|{{ [1.0, 1e20, -0.5, true, none] | tojson }}",
    "{{ d | tojson(indent=2) }}|{{ [] | tojson(indent=4) }}|{{ {} | tojson }}",
    "{{ text.strip() }}|{{ text.lstrip() }}|{{ text.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ 'a b  c'.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a b c'.split(' ', 1) }}",
    "{{ text.startswith('  He') }}{{ text.endswith('!') }}{{ 'abc'.upper() }}{{ 'ABC'.lower() }}{{ 'a-b'.replace('-', '+') }}{{ 'the cat'.title() }}{{ 'abc'.capitalize() }}",
    "{{ d.keys() | list }}{{ d.values() | list | length }}{{ d.items() | list | first }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }}|{% set block %}x{{ n }}y{% endset %}{{ block }}",
    "{% macro tag(name, value='v') %}<{{ name }}={{ value }}>{% endmacro %}{{ tag('a') }}{{ tag('b', 'w') }}{{ tag(name='c', value=1) }}",
    "{% for i in range(3) %}{{ i }}{% endfor %}|{{ range(2, 8, 3) | list }}|{% for x in xs %}{{ loop.cycle('odd', 'even') }} {% endfor %}",
    "{{ raise_exception('Custom failure: ' ~ n) }}",
    "{{ 'a' + 1 }}",
    "a\n  {% if true %}\n  b\n  {% endif %}\n  c\n",
    "  {{ 'x' }}\n  {% for x in xs %}\n    {{ x }}\n  {% endfor %}\nend",
    "a  {{- ' b ' -}}  c\n  {%- if true -%}  d  {%- endif -%}\n e",
    "{# comment #}\n  {# indented comment #}\nx {#- trimmed -#} y\n{%+ if true %} keep{% endif +%}\nz",
    "\t{% if true %}\ttab\n\t{% endif %}\n{%- if true %}\n\nblank{% endif %}",
    "line1\r\nline2\rline3\n\n",
    "{{ 'multi\nline' }}{% if true\n %}yes{% endif\n%}\n",
    "{{ \"esc: \\t|\\n|\\\\|\\'|\\\"|\\x41|\\u00e9|\\101|\\q\" }}",
    "{{ {'a': {'b': 1}} }}{{ {'a': {'b': 1}}['a']['b'] }}",
    "{{ messages | length }}{{ add_generation_prompt }}{{ tools }}{{ documents }}{{ bos_token }}{{ eos_token }}",
    "{{ ms[1].content is none }}{{ ms[1].content }}{{ ms[1].missing is defined }}{{ ms[2].content | trim }}",
    "{% generation %}gen {{ n }}{% endgeneration %}",
]

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

    class Generation(jinja2.ext.Extension):
        """{% generation %}: transformers' AssistantTracker renders the body unchanged."""
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

        def _render(self, caller):
            return caller()

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now

    def render(source, messages, tools, add_generation_prompt, special_tokens, variables=None):
        template = env.from_string(source)
        return template.render(messages=messages, tools=tools, documents=None,
                               add_generation_prompt=add_generation_prompt, **special_tokens,
                               **(variables or {}))

    return render, {"jinja2": jinja2.__version__}


def transformers_renderer():
    import jinja2
    import transformers
    from transformers.utils import chat_template_utils

    def render(source, messages, tools, add_generation_prompt, special_tokens, variables=None):
        rendered, _ = chat_template_utils.render_jinja_template(
            conversations=[messages], tools=tools, chat_template=source,
            add_generation_prompt=add_generation_prompt, **special_tokens, **(variables or {}))
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

    snippets = []
    for source in SNIPPETS:
        case = {"template": source}
        try:
            case["output"] = render(source, [], None, False, {"bos_token": "<s>", "eos_token": "</s>"},
                                    SNIPPET_VARS)
        except Exception as e:  # noqa: BLE001 (jinja2 lets Python's TypeError etc. through)
            # raise_exception's message is the template's own; other failures are jinja2's words.
            case["error"] = str(e) if "raise_exception" in source else True
        snippets.append(case)

    result = {
        "generated_by": {"script": "scripts/golden/make_chat_fixtures.py", "engine": args.engine,
                         "versions": versions, "python": platform.python_version()},
        "templates": {name: {"file": file, "bos_token": bos, "eos_token": eos}
                      for name, (file, bos, eos) in TEMPLATES.items()},
        "conversations": CONVERSATIONS,
        "cases": cases,
        "snippet_vars": SNIPPET_VARS,
        "snippets": snippets,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
        f.write("\n")
    errors = sum("error" in c for c in cases)
    print(f"wrote {args.out}: {len(cases)} cases ({errors} errors), {len(snippets)} snippets "
          f"with {args.engine}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
