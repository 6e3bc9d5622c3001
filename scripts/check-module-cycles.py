#!/usr/bin/env python3
"""Import-cycle check for the spindle library: no cycle between sibling
modules at any level of src/ (issue 10's layering rule).

Why not cargo-modules: its `dependencies --acyclic` (0.27) checks the item
graph, where every method that returns its own type (`fn since(self, ..)
-> Self`, an `impl Sub` with `type Output = Self`) is a cycle, so it fails
on any crate; its 0.28 needs a newer rustc than CI's. This script checks
the module graph the layering is about.

For every non-test file under src/ (bin/ excluded) it reads the paths it
names (`crate::a::b`, `super::x`, `self::x`; comments and `#[cfg(test)]`
tails dropped), resolves each to the deepest module that exists, and adds
an edge between the two sibling modules under the nearest common parent
(a file in protocol/nonlinear/batch.rs naming crate::protocol::trunc adds
nonlinear -> trunc inside protocol). It prints every strongly connected
component of more than one module with the files that make its edges, and
exits 1 if there is one.

Usage: scripts/check-module-cycles.py [SRC_DIR]   (default: src)
"""
import collections
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")


def module_of(rel):
    """Module path of a file: a/b.rs and a/b/mod.rs are a::b."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)


files = {}
for dp, _, fn in os.walk(SRC):
    for f in fn:
        if not f.endswith(".rs"):
            continue
        rel = os.path.relpath(os.path.join(dp, f), SRC)
        if rel.split(os.sep)[0] == "bin" or rel == "main.rs":
            continue
        files[rel] = module_of(rel)
modules = set(files.values())
# Inline `mod name {` blocks count as part of their file's module.


def resolve(path):
    """The deepest existing module prefix of `path` (a tuple)."""
    for i in range(len(path), 0, -1):
        if path[:i] in modules:
            return path[:i]
    return None


edges = collections.defaultdict(set)
why = collections.defaultdict(set)
path_re = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
for rel, mod in files.items():
    text = open(os.path.join(SRC, rel)).read()
    cut = text.find("#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    text = re.sub(r"//[^\n]*", "", text)
    # `use a::{b, c::d}` groups: expand one level of braces.
    for m in path_re.finditer(text):
        head, rest = m.group(1), m.group(2).split("::")[1:]
        if head == "crate":
            target = tuple(rest)
        elif head == "super":
            base = mod[:-1]
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
            target = base + tuple(rest)
        else:
            target = mod + tuple(rest)
        # The brace group right after the path, if any: `crate::a::{b, c}`.
        tail = text[m.end(): m.end() + 400]
        targets = [target]
        if tail.startswith("::{"):
            inner = tail[3: tail.find("}") if "}" in tail else 0]
            targets = [target + tuple(x.strip().split("::")[:1]) for x in inner.split(",") if x.strip()]
        for t in targets:
            t = resolve(t)
            if t is None:
                continue
            # Nearest common parent: the first component where they differ.
            k = 0
            while k < len(mod) and k < len(t) and mod[k] == t[k]:
                k += 1
            if k == len(mod) or k == len(t):
                continue  # a module and its ancestor or descendant
            a, b = mod[: k + 1], t[: k + 1]
            edges[a].add(b)
            why[(a, b)].add(rel)

index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(100000)


def strong(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in sorted(edges[v]):
        if w not in index:
            strong(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        sccs.append(comp)


for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
    if v not in index:
        strong(v)
cycles = [c for c in sccs if len(c) > 1]
name = lambda m: "::".join(m) or "crate"
for comp in cycles:
    print("cycle: " + ", ".join(sorted(name(m) for m in comp)))
    for a in sorted(comp):
        for b in sorted(edges[a]):
            if b in comp:
                print(f"  {name(a)} -> {name(b)}: {', '.join(sorted(why[(a, b)])[:5])}")
n_edges = sum(len(v) for v in edges.values())
if cycles:
    print(f"{len(cycles)} import cycle(s) among {len(modules)} modules ({n_edges} sibling edges)")
    sys.exit(1)
print(f"no import cycle among {len(modules)} modules ({n_edges} sibling edges)")
