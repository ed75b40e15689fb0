#!/usr/bin/env python3
"""Fails if the modules of a crate import each other in a circle.

Usage: module-cycles.py CRATE_SRC_DIR...   (e.g. lsnn-host/src lsnn-gpu/src)

A module is a source file (`foo.rs` or `foo/mod.rs`). It depends on module M when its code
names a path into M: `use crate::a::b::Item`, `crate::a::f()`, `super::x`, `self::child::y`, or
a child module's name. A path resolves to the longest prefix that is a module, so
`crate::train::step::TrainStep` is a dependency on `train::step`. A `pub use` re-export is an
alias, not an import: a path through it (`crate::train::Workspace`, re-exported from
`train::batch`) is a dependency on the module that the re-export names, and the re-export
itself is none (a module that only re-exports its children is a facade). Any other use of a
child by its parent counts: a parent that calls its child while the child names its parent is
a circle. Comments, strings
and `#[cfg(test)]` modules (leaves that no module imports) are left out. Binaries (main.rs,
bin/) are roots that nothing imports, and are skipped.

A crate's `apps` module (the commands) is a root too: no other module may import it.
"""

import os
import re
import sys

PUB_USE = re.compile(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);")
PATH = re.compile(r"\b(crate|super|self)((?:\s*::\s*\w+)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super|self)((?:\s*::\s*\w+)*)\s*::\s*\{")
GLOB = re.compile(r"\b(crate|super|self)((?:\s*::\s*\w+)*)\s*::\s*\*")
MOD_DECL = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", re.M)
TEST_MOD = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{")


def strip(text):
    """The code without comments, string and char literals."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == "r" and re.match(r'r#*"', text[i:]) and not text[i - 1 : i].isalnum():
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            j = text.find('"' + hashes, i + 2 + len(hashes))
            i = n if j < 0 else j + 1 + len(hashes)
            out.append('""')
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'", text[i:]).group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def without_test_modules(code):
    while True:
        m = TEST_MOD.search(code)
        if not m:
            return code
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        code = code[: m.start()] + code[j:]


def modules(src):
    """{module path tuple: file} for every module file under src (lib.rs is ())."""
    found = {}
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if d != "bin"]
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)[:-3].split(os.sep)
            if rel == ["main"]:
                continue
            if rel[-1] in ("mod", "lib"):
                rel = rel[:-1]
            found[tuple(rel)] = os.path.join(root, f)
    return found


def reexports(here, code, known):
    """{name: the path (module tuple, segments) it aliases} of a module's `pub use`s."""
    found = {}
    for body in PUB_USE.findall(code):
        body = re.sub(r"\s+", "", body)
        m = re.match(r"((?:\w+::)*)\{(.*)\}$", body)
        items = [m.group(1) + i for i in split_group(m.group(2))] if m else [body]
        for item in items:
            alias = item.split("::")[-1]
            if " as " in item or alias in ("*", "self"):
                continue
            segs = item.split("::")
            if segs[0] in ("crate", "super", "self"):
                found[alias] = (segs[0], segs[1:])
            elif here + (segs[0],) in known:
                found[alias] = ("self", segs)
    return found


def split_group(group):
    """`a::{b, c}, d` -> ['a::b', 'a::c', 'd'] (one level of nesting)."""
    items, depth, cur = [], 0, ""
    for c in group + ",":
        if c == "," and depth == 0:
            if cur:
                m = re.match(r"((?:\w+::)*)\{(.*)\}$", cur)
                items += [m.group(1) + i for i in split_group(m.group(2))] if m else [cur]
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(c, 0)
        cur += c
    return items


def resolve(here, head, segments, known, aliases=None, seen=0):
    if head == "crate":
        base = ()
    elif head == "self":
        base = here
    else:
        base = here
        while segments and segments[0] == "super":
            segments = segments[1:]
            base = base[:-1]
        base = base[:-1]
    full = base + tuple(s for s in segments if s not in ("self",))
    module = full
    while module and module not in known:
        module = module[:-1]
    # An item re-exported by `module`: the module it comes from.
    rest = full[len(module) :]
    if aliases and rest and rest[0] in aliases.get(module, {}) and seen < 16:
        head2, segs2 = aliases[module][rest[0]]
        return resolve(module, head2, list(segs2) + list(rest[1:]), known, aliases, seen + 1)
    return module


def code_of(path):
    return without_test_modules(strip(open(path, encoding="utf-8").read()))


def edges(here, code, known, aliases):
    deps = set()
    code = PUB_USE.sub(";", code)
    children = {here + (name,) for name in MOD_DECL.findall(code)}
    for head, tail in PATH.findall(code):
        segs = [s.strip() for s in tail.split("::") if s.strip()]
        deps.add(resolve(here, head, segs, known, aliases))
    for head, tail in GLOB.findall(code):
        segs = [s.strip() for s in tail.split("::") if s.strip()]
        deps.add(resolve(here, head, segs, known, aliases))
    for m in USE_GROUP.finditer(code):
        # `use crate::a::{b, c::D}`: each item of the group is a path of its own.
        head, prefix = m.group(1), [s.strip() for s in m.group(2).split("::") if s.strip()]
        depth, j = 1, m.end()
        while depth and j < len(code):
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        group = code[m.end() : j - 1]
        for item in re.findall(r"\w+(?:\s*::\s*\w+)*", group):
            segs = prefix + [s.strip() for s in item.split("::")]
            deps.add(resolve(here, head, segs, known, aliases))
    # A child named without a prefix (`use child::X`, `child::f()`).
    for child in children:
        for m in re.finditer(r"(?<!::)\b%s((?:\s*::\s*\w+)+)" % child[-1], code):
            segs = [child[-1]] + [x.strip() for x in m.group(1).split("::") if x.strip()]
            deps.add(resolve(here, "self", segs, known, aliases))
    deps.discard(here)
    return deps


def cycle(graph):
    """One circle of the graph as a list of modules, or None."""
    colour, stack = {}, []

    def visit(node):
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in colour:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        colour[node] = 2
        return None

    for node in sorted(graph):
        if node not in colour:
            found = visit(node)
            if found:
                return found
    return None


def name(module):
    return "::".join(("crate",) + module)


def main(srcs):
    failed = False
    for src in srcs:
        known = modules(src)
        codes = {m: code_of(f) for m, f in known.items()}
        aliases = {m: reexports(m, c, known) for m, c in codes.items()}
        graph = {m: edges(m, c, known, aliases) for m, c in codes.items()}
        found = cycle(graph)
        into_apps = sorted(
            m for m, deps in graph.items()
            if m[:1] != ("apps",) and any(d[:1] == ("apps",) for d in deps)
        )
        if into_apps:
            failed = True
            print(f"{src}: only main may import the commands (apps), not {', '.join(map(name, into_apps))}")
        if found:
            failed = True
            print(f"{src}: modules import each other in a circle: {' -> '.join(map(name, found))}")
        else:
            n = sum(len(d) for d in graph.values())
            print(f"{src}: {len(known)} modules, {n} imports, no circle")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["lsnn-host/src", "lsnn-gpu/src"]))
