#!/usr/bin/env python3
"""The library's module graph and its cycles, from the `use` lines of src/.

A node is a top-level module of the library (`src/<name>.rs` or `src/<name>/`); an edge A -> B
is a `use crate::B...` (or `super::`/`crate::` path reaching B) in a file of A. Prints the edges
that take part in a cycle (the strongly connected components with more than one module) and
their count: `scripts/module-cycles.py` (issue 31 asks for none).
"""
import os
import re
import sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
edges = {}  # (a, b) -> [file:line]
for dirpath, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".rs"):
            continue
        path = os.path.join(dirpath, f)
        rel = os.path.relpath(path, root)
        parts = rel[:-3].split(os.sep)
        top = parts[0]
        if top in ("lib", "main"):
            continue
        # The module path of this file, for `super::`.
        mod_path = [p for p in parts if p != "mod"]
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.lstrip().startswith("//"):
                    continue  # documentation links are not imports
                for m in re.finditer(r"\b(crate|super(?:::super)*)::([a-z_][a-z0-9_]*)", line):
                    head, name = m.group(1), m.group(2)
                    if head == "crate":
                        target = name
                    else:
                        ups = head.count("super")
                        base = mod_path[: len(mod_path) - ups]
                        target = base[0] if base else name
                    is_module = os.path.exists(os.path.join(root, target + ".rs")) or os.path.isdir(
                        os.path.join(root, target)
                    )
                    if is_module and target != top:
                        edges.setdefault((top, target), []).append(f"{rel}:{n}")

graph = {}
for a, b in edges:
    graph.setdefault(a, set()).add(b)
    graph.setdefault(b, set())

# Tarjan's strongly connected components.
index, low, on, stack, sccs, counter = {}, {}, set(), [], [], [0]
sys.setrecursionlimit(10000)

def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in sorted(graph[v]):
        if w not in index:
            visit(w)
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
        sccs.append(sorted(comp))

for v in sorted(graph):
    if v not in index:
        visit(v)

cyclic = [c for c in sccs if len(c) > 1]
in_cycle = [(a, b) for (a, b) in sorted(edges) if any(a in c and b in c for c in cyclic)]
print(f"{len(graph)} modules, {len(edges)} edges; {len(cyclic)} cycle groups, {len(in_cycle)} edges in cycles")
for c in cyclic:
    print("group:", " ".join(c))
for a, b in in_cycle:
    sites = edges[(a, b)]
    print(f"  {a} -> {b}: {len(sites)} uses, e.g. {sites[0]}")

# `--check` (CI): a cycle is an error, so none comes back unnoticed.
if "--check" in sys.argv[1:] and cyclic:
    sys.exit("module cycles: the top-level modules above import each other; see ARCHITECTURE.md §7")
