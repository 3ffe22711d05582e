#!/usr/bin/python3
"""Reference renderer for lmlab's chat-template engine (lmlab/chat/, `lmlab template`).

Renders Hugging Face chat templates with jinja2 configured the way `transformers` configures it
(transformers/utils/chat_template_utils.py, `_compile_jinja_template` and `render_jinja_template`):
an ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the loopcontrols extension and a
`{% generation %}` tag that renders its body; `tojson` replaced by json.dumps(ensure_ascii=False, ...);
globals raise_exception(message) and strftime_now(format); variables messages, tools (None when
absent), documents (None when absent), add_generation_prompt, bos_token, eos_token and any extra keyword.

strftime_now returns the date in the environment variable LMLAB_FIXED_DATE=YYYY-MM-DD (at 00:00:00)
when it is set, else the current time.

Subcommands:
  generate   tests/chat/cases.json -> tests/chat/expected/<name>.txt (the render, UTF-8, nothing added)
             or <name>.error (str(exception)) when rendering raises; LMLAB_FIXED_DATE is 2026-01-15.
  render     --template T --messages M.json [--tools F.json] [--add-generation-prompt]
             [--bos-token S] [--eos-token S] [--var NAME=JSON ...]: the render on stdout, exactly;
             exit 1 with the message on stderr when it raises.
  conformance --lmlab BIN: every committed case (tests/chat/cases.json) rendered now by jinja2 and by
             `BIN template`; prints RESULT template_conformance <fraction identical> (make bench).
  check      --lmlab BIN --templates DIR [--conversations DIR]: every DIR/*.jinja over every
             conversation, both add_generation_prompt values, rendered here and by
             `BIN template ...`; compares bytes. Exit 0 iff all identical.

Messages file: a JSON array of messages, or an object with "messages" and optional "tools",
"documents" and any other keys (extra template variables, e.g. "enable_thinking": false).

Runs under Debian's /usr/bin/python3 with python3-jinja2 (3.1.x); jinja2 is the only dependency.
"""
import argparse
import datetime
import glob
import json
import os
import subprocess
import sys

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHAT_TESTS = os.path.join(REPO, "tests", "chat")
FIXED_DATE = "2026-01-15"


class GenerationTag(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}`: renders its body (transformers' AssistantTracker
    also records the body's character span when asked for an assistant mask; rendering is the same)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller):
        return caller()


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    fixed = os.environ.get("LMLAB_FIXED_DATE")
    if fixed:
        now = datetime.datetime.strptime(fixed, "%Y-%m-%d")
    else:
        now = datetime.datetime.now()
    return now.strftime(fmt)


def make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                       extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


def read_text(path):
    # newline="" keeps CRLF line endings as they are in the file (transformers gets the template as
    # a string from tokenizer_config.json or chat_template.jinja, unchanged).
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def load_conversation(path):
    """Returns (messages, variables) from a messages file: variables holds tools, documents and
    every other top-level key of an object file."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, list):
        return data, {}
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise ValueError(f"{path}: expected an array of messages or an object with a 'messages' array")
    extra = {k: v for k, v in data.items() if k != "messages"}
    return data["messages"], extra


def render(template_text, messages, variables, add_generation_prompt, bos_token, eos_token):
    """Renders like transformers' render_jinja_template: tools and documents are always passed
    (None when absent), then bos/eos, then the extra variables."""
    env = make_env()
    tmpl = env.from_string(template_text)
    kwargs = dict(variables)
    tools = kwargs.pop("tools", None)
    documents = kwargs.pop("documents", None)
    kwargs.setdefault("bos_token", bos_token)
    kwargs.setdefault("eos_token", eos_token)
    return tmpl.render(messages=messages, tools=tools, documents=documents,
                       add_generation_prompt=add_generation_prompt, **kwargs)


def try_render(*args):
    """(text, None) or (None, message)."""
    try:
        return render(*args), None
    except Exception as exc:  # jinja2 errors, and Python errors raised inside the template
        return None, str(exc) if str(exc) else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# generate

def cmd_generate(args):
    os.environ["LMLAB_FIXED_DATE"] = FIXED_DATE
    cases_path = os.path.join(CHAT_TESTS, "cases.json")
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)
    out_dir = os.path.join(CHAT_TESTS, "expected")
    os.makedirs(out_dir, exist_ok=True)
    names = set()
    n_ok = n_err = 0
    for case in cases:
        name = case["name"]
        if name in names:
            sys.exit(f"duplicate case name {name}")
        names.add(name)
        template = read_text(os.path.join(CHAT_TESTS, "templates", case["template"]))
        messages, variables = load_conversation(os.path.join(CHAT_TESTS, "conversations", case["conversation"]))
        variables.update(case.get("vars", {}))
        text, err = try_render(template, messages, variables, case["add_generation_prompt"],
                               case.get("bos_token", ""), case.get("eos_token", ""))
        for ext in (".txt", ".error"):  # a case that changed outcome leaves no stale file
            stale = os.path.join(out_dir, name + ext)
            if os.path.exists(stale):
                os.remove(stale)
        if err is None:
            with open(os.path.join(out_dir, name + ".txt"), "wb") as f:
                f.write(text.encode("utf-8"))
            n_ok += 1
        else:
            with open(os.path.join(out_dir, name + ".error"), "wb") as f:
                f.write(err.encode("utf-8"))
            n_err += 1
    # Expected files of cases that no longer exist.
    removed = 0
    for path in glob.glob(os.path.join(out_dir, "*")):
        stem, ext = os.path.splitext(os.path.basename(path))
        if ext in (".txt", ".error") and stem not in names:
            os.remove(path)
            removed += 1
    print(f"generate: {len(cases)} cases, {n_ok} rendered (.txt), {n_err} raising (.error), "
          f"{removed} stale files removed, in {os.path.relpath(out_dir, REPO)}/")


# ---------------------------------------------------------------------------------------------
# render

def parse_var(spec):
    if "=" not in spec:
        raise argparse.ArgumentTypeError(f"--var wants NAME=JSON, got {spec!r}")
    name, value = spec.split("=", 1)
    try:
        return name, json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--var {name}: not JSON: {exc}")


def cmd_render(args):
    template = read_text(args.template)
    messages, variables = load_conversation(args.messages)
    if args.tools:
        with open(args.tools, encoding="utf-8") as f:
            variables["tools"] = json.load(f)
    for name, value in args.var:
        variables[name] = value
    text, err = try_render(template, messages, variables, args.add_generation_prompt,
                           args.bos_token, args.eos_token)
    if err is not None:
        sys.stderr.write(err + "\n")
        return 1
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()
    return 0


# ---------------------------------------------------------------------------------------------
# check

def first_diff(a, b, context=60):
    """A few lines showing the first differing byte of a (jinja2) and b (lmlab)."""
    n = min(len(a), len(b))
    i = next((k for k in range(n) if a[k] != b[k]), n)
    lo = max(0, i - context)

    def show(x):
        return repr(x[lo:i + context].decode("utf-8", errors="backslashreplace"))

    return (f"    first difference at byte {i} (jinja2 {len(a)} bytes, lmlab {len(b)} bytes)\n"
            f"    jinja2: {show(a)}\n"
            f"    lmlab:  {show(b)}")


def compare_with_lmlab(lmlab, tpath, cpath, agp, bos, eos, text, err, env):
    """Renders with `lmlab template` and compares with jinja2's outcome (text, or err when it
    raised: then lmlab must exit non-zero). Returns (identical, detail lines)."""
    cmd = [lmlab, "template", "--template", tpath, "--messages", cpath, "--bos-token", bos, "--eos-token", eos]
    if agp:
        cmd.append("--add-generation-prompt")
    try:
        proc = subprocess.run(cmd, capture_output=True, env=env, timeout=60)
        rc, out, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        rc, out, stderr = -1, b"", b"timed out after 60 s"
    if err is not None:
        return rc != 0, f"    jinja2 raised: {err}\n    lmlab exited 0 with {len(out)} bytes"
    want = text.encode("utf-8")
    if rc != 0:
        return False, f"    lmlab exited {rc}: {stderr.decode('utf-8', errors='backslashreplace').strip()[:400]}"
    return out == want, first_diff(want, out)


def cmd_conformance(args):
    """The committed cases (tests/chat/cases.json), each rendered now by jinja2 and by `lmlab
    template`: prints RESULT template_conformance <fraction identical>."""
    import tempfile
    os.environ["LMLAB_FIXED_DATE"] = FIXED_DATE
    env = dict(os.environ)
    with open(os.path.join(CHAT_TESTS, "cases.json"), encoding="utf-8") as f:
        cases = json.load(f)
    same = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            tpath = os.path.join(CHAT_TESTS, "templates", case["template"])
            messages, variables = load_conversation(os.path.join(CHAT_TESTS, "conversations", case["conversation"]))
            variables.update(case.get("vars", {}))
            bos, eos = case.get("bos_token", ""), case.get("eos_token", "")
            text, err = try_render(read_text(tpath), messages, variables, case["add_generation_prompt"], bos, eos)
            cpath = os.path.join(tmp, "messages.json")  # the conversation with the case's variables
            with open(cpath, "w", encoding="utf-8") as f:
                json.dump(dict(variables, messages=messages), f, ensure_ascii=False)
            good, detail = compare_with_lmlab(args.lmlab, tpath, cpath, case["add_generation_prompt"], bos, eos, text,
                                              err, env)
            same += good
            if not good:
                print(f"# template_conformance: {case['name']} differs\n{detail}")
    print(f"# template_conformance: {same}/{len(cases)} committed cases identical to jinja2 "
          f"({jinja2.__version__}) rendering them now")
    print(f"RESULT template_conformance {same / max(1, len(cases)):.6f}")
    return 0 if same == len(cases) else 1


def cmd_check(args):
    os.environ["LMLAB_FIXED_DATE"] = FIXED_DATE
    env = dict(os.environ)
    templates = sorted(glob.glob(os.path.join(args.templates, "*.jinja")))
    conversations = sorted(glob.glob(os.path.join(args.conversations, "*.json")))
    if not templates:
        sys.exit(f"no *.jinja in {args.templates}")
    if not conversations:
        sys.exit(f"no *.json in {args.conversations}")
    total = same = 0
    bos, eos = "<s>", "</s>"
    for tpath in templates:
        template = read_text(tpath)
        n = ok = 0
        shown = False
        for cpath in conversations:
            messages, variables = load_conversation(cpath)
            for agp in (False, True):
                n += 1
                text, err = try_render(template, messages, variables, agp, bos, eos)
                good, detail = compare_with_lmlab(args.lmlab, tpath, cpath, agp, bos, eos, text, err, env)
                if good:
                    ok += 1
                elif not shown or args.all_diffs:
                    shown = True
                    print(f"  {os.path.basename(tpath)} x {os.path.basename(cpath)} agp={int(agp)}:")
                    print(detail)
        print(f"{os.path.basename(tpath)}: {ok}/{n} identical", flush=True)
        total += n
        same += ok
    print(f"total: {same}/{total} identical over {len(templates)} templates x {len(conversations)} conversations x 2")
    return 0 if same == total else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("generate", help="write tests/chat/expected/ from tests/chat/cases.json")
    r = sub.add_parser("render", help="render one template with jinja2")
    r.add_argument("--template", required=True)
    r.add_argument("--messages", required=True)
    r.add_argument("--tools")
    r.add_argument("--add-generation-prompt", action="store_true")
    r.add_argument("--bos-token", default="")
    r.add_argument("--eos-token", default="")
    r.add_argument("--var", action="append", type=parse_var, default=[], metavar="NAME=JSON")
    c = sub.add_parser("check", help="compare `lmlab template` with jinja2 over real templates")
    c.add_argument("--lmlab", required=True, help="path to the lmlab binary")
    c.add_argument("--templates", required=True, help="folder of *.jinja")
    c.add_argument("--conversations", default=os.path.join(CHAT_TESTS, "conversations"))
    c.add_argument("--all-diffs", action="store_true", help="show every mismatch, not the first per template")
    k = sub.add_parser("conformance", help="the committed cases rendered by jinja2 and by `lmlab template`")
    k.add_argument("--lmlab", required=True, help="path to the lmlab binary")
    args = ap.parse_args()
    if args.cmd == "conformance":
        return cmd_conformance(args)
    if args.cmd == "generate":
        return cmd_generate(args) or 0
    if args.cmd == "render":
        return cmd_render(args)
    return cmd_check(args)


if __name__ == "__main__":
    sys.exit(main())
