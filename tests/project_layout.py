"""The project's modules and their imports, read from the source with ast: what
tests/test_structure.py checks the layout's rules on (kept apart so that the rules fit
in one file under 500 lines). Pure Python; imports nothing of the project."""

from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "neural_style_tf"


def project_modules():
    """{module name: (path, is_package)} for every .py at the top level and in the package."""
    modules = {}
    for name in sorted(os.listdir(ROOT)):
        path = os.path.join(ROOT, name)
        if name.endswith(".py") and os.path.isfile(path):
            modules[name[:-3]] = (path, False)
    package_dir = os.path.join(ROOT, PACKAGE)
    for folder, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        parts = os.path.relpath(folder, ROOT).split(os.sep)
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            if name == "__init__.py":
                modules[".".join(parts)] = (path, True)
            else:
                modules[".".join(parts + [name[:-3]])] = (path, False)
    return modules


def parse(path):
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read(), filename=path)


def imported_names(tree, module, is_package):
    """(dotted name, line) for every import in `tree`, at any depth (functions too),
    relative imports resolved; `from X import Y` gives X and X.Y (Y may be a module)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def import_graph():
    """{module: {imported project module: first line}}, over project modules only.

    Importing a.b.c imports a and a.b too, so every project-module prefix is an edge.
    """
    modules = project_modules()
    graph = {name: {} for name in modules}
    for name, (path, is_package) in modules.items():
        for target, line in imported_names(parse(path), name, is_package):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in modules and prefix != name:
                    graph[name].setdefault(prefix, line)
    return graph


def cycles(graph):
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def path_between(graph, start, goals, within=None):
    """The shortest import chain start -> ... -> one of `goals` (BFS), or None."""
    previous, queue = {start: None}, [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node]):
            if within is not None and nxt not in within:
                continue
            if nxt in goals:
                chain = [nxt, node]
                while previous[chain[-1]] is not None:
                    chain.append(previous[chain[-1]])
                return chain[::-1]
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    return None


def describe(graph, chain):
    """'a -> b (a:12) -> c (b:3)': each step with the importing module's line."""
    text = chain[0]
    for a, b in zip(chain, chain[1:]):
        text += f" -> {b} ({a}:{graph[a][b]})"
    return text
