"""The layout's rules, checked on the source: no import cycles, no TensorFlow at import
time, short functions, commands independent of each other, an empty package __init__,
and no sys.path edits in the tests.

Pure Python (ast and one subprocess that imports the project without TensorFlow); fast.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "neural_style_tf"
TESTS_DIR = os.path.join(ROOT, "tests")

MAX_FUNCTION_LINES = 60
# The commands: each is its top-level file and, for the experiments, the package module
# with its code. No command may import (even indirectly) another command.
COMMANDS = {
    "neural_style": {"neural_style"},
    "video": {"video", f"{PACKAGE}.apps.video", f"{PACKAGE}.apps.clip"},
    "compare": {"compare", f"{PACKAGE}.apps.compare", f"{PACKAGE}.apps.compare_report"},
    "reproduce": {"reproduce", f"{PACKAGE}.apps.reproduce"},
    "benchmark": {"benchmark", f"{PACKAGE}.apps.benchmark", f"{PACKAGE}.apps.benchmark_measure"},
    "batch": {"batch", f"{PACKAGE}.apps.batch"},
}
WATCHED = ("tensorflow", "keras", "tf_keras")


# ---------------------------------------------------------------- the project's modules


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


# ---------------------------------------------------------------- the tests


def test_the_layout_is_found():
    modules = project_modules()
    for name in ("neural_style", "stylize", "vgg", "compare", "reproduce", "benchmark", "batch", PACKAGE,
                 f"{PACKAGE}.cli", f"{PACKAGE}.transfer", f"{PACKAGE}.networks.calibration"):
        assert name in modules, name


def test_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    reports = []
    for component in found:
        members = set(component)
        chain = path_between(graph, component[0], {component[0]}, within=members)
        reports.append(f"{', '.join(component)}\n    e.g. {describe(graph, chain)}")
    assert not found, "import cycles (imports inside functions included):\n  " + "\n  ".join(reports)


_IMPORT_ALL = r"""
import importlib, json, os, sys, traceback

WATCHED = {watched!r}
MODULES = {modules!r}
already = sorted(m for m in sys.modules if m.partition(".")[0] in WATCHED)
current = [None]
culprits = {{}}


class Watch:
    # Sees every import not yet in sys.modules; records who first asks for a watched one.
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in WATCHED and top not in culprits:
            frames = [f"{{f.filename}}:{{f.lineno}}" for f in traceback.extract_stack()[:-1]
                      if not f.filename.startswith("<")]
            # The project's frames (the import chain), then the last few outside it.
            ours = [f for f in frames if f.startswith(os.getcwd() + os.sep)]
            culprits[top] = {{"while importing": current[0], "stack": ours + ["..."] + frames[-3:]}}
        return None


sys.meta_path.insert(0, Watch())
errors = {{}}
for name in MODULES:
    current[0] = name
    try:
        importlib.import_module(name)
    except Exception as exc:
        errors[name] = f"{{type(exc).__name__}}: {{exc}}"
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in WATCHED)
print(json.dumps({{"already": already, "loaded": loaded, "culprits": culprits, "errors": errors}}))
"""


def test_importing_every_module_imports_no_tensorflow_or_keras():
    modules = sorted(project_modules())
    script = _IMPORT_ALL.format(watched=WATCHED, modules=modules)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert not report["already"], f"loaded at interpreter start-up, before any project module: {report['already']}"
    assert not report["errors"], f"modules that fail to import: {report['errors']}"
    details = "\n".join(f"  {top}: first imported while importing {info['while importing']}; stack:\n    "
                        + "\n    ".join(info["stack"]) for top, info in report["culprits"].items())
    assert not report["loaded"], f"importing the project loaded {report['loaded'][:5]}...\n{details}"


def is_argument_parser(name):
    return name == "build_parser" or (name.startswith("add_") and name.endswith("_arguments"))


def test_no_function_is_longer_than_60_lines():
    offenders = []
    for _name, (path, _) in sorted(project_modules().items()):
        for node in ast.walk(parse(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not is_argument_parser(node.name):
                length = node.end_lineno - node.lineno + 1  # the def line (decorators excluded) to the last
                if length > MAX_FUNCTION_LINES:
                    offenders.append((os.path.relpath(path, ROOT), node.lineno, node.name, length))
    lines = [f"{path}:{line} {name} ({length} lines)" for path, line, name, length in sorted(offenders)]
    assert not offenders, f"{len(offenders)} functions over {MAX_FUNCTION_LINES} lines:\n  " + "\n  ".join(lines)


def test_commands_do_not_import_each_other():
    graph = import_graph()
    problems = []
    for command, members in COMMANDS.items():
        others = set().union(*(m for c, m in COMMANDS.items() if c != command)) & set(graph)
        for module in sorted(members & set(graph)):
            chain = path_between(graph, module, others)
            if chain:
                problems.append(describe(graph, chain))
    assert not problems, "a command imports another command:\n  " + "\n  ".join(problems)


def test_the_package_init_imports_only_the_standard_library():
    path = os.path.join(ROOT, PACKAGE, "__init__.py")
    found = []
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.ImportFrom) and node.level:
            found.append(f"line {node.lineno}: from {'.' * node.level}{node.module or ''} import ...")
        elif isinstance(node, ast.ImportFrom):
            if node.module.partition(".")[0] not in sys.stdlib_module_names:
                found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names
                      if a.name.partition(".")[0] not in sys.stdlib_module_names]
    assert not found, f"{PACKAGE}/__init__.py imports beyond the standard library:\n  " + "\n  ".join(found)


def _is_sys_path(node):
    return (isinstance(node, ast.Attribute) and node.attr == "path"
            and isinstance(node.value, ast.Name) and node.value.id == "sys")


def sys_path_edits(tree):
    """Lines that change sys.path: sys.path.insert/append/extend(...), sys.path[...] = ..., sys.path = ..."""
    lines = defaultdict(list)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("insert", "append", "extend") and _is_sys_path(node.func.value)):
            lines[node.lineno].append(f"sys.path.{node.func.attr}(...)")
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if _is_sys_path(t) or (isinstance(t, ast.Subscript) and _is_sys_path(t.value)):
                    lines[node.lineno].append("assignment to sys.path")
    return dict(lines)


def test_no_test_file_edits_sys_path():
    found = []
    for folder, dirs, files in os.walk(TESTS_DIR):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                for line, what in sorted(sys_path_edits(parse(path)).items()):
                    found.append(f"{os.path.relpath(path, ROOT)}:{line}: {', '.join(what)}")
    assert not found, ("tests edit sys.path (pyproject.toml's pytest pythonpath makes `import vgg` and "
                       "`import weights_factory` work):\n  " + "\n  ".join(found))


def test_the_checks_catch_what_they_look_for():
    # A cycle, a relative import and a sys.path edit, each in a snippet.
    assert cycles({"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []
    tree = ast.parse("from . import x\nfrom ..y import z\ndef f():\n    import q.r\n")
    names = set(imported_names(tree, f"{PACKAGE}.sub.mod", False))
    assert {(f"{PACKAGE}.sub", 1), (f"{PACKAGE}.sub.x", 1), (f"{PACKAGE}.y", 2), (f"{PACKAGE}.y.z", 2),
            ("q.r", 4)} <= names
    edits = sys_path_edits(ast.parse("import sys\nsys.path.insert(0, 'x')\nsys.path[:0] = ['y']\ns = 'sys.path.append'\n"))
    assert sorted(edits) == [2, 3]


# ---------------------------------------------------------------- the layout of issue 22

APPS = f"{PACKAGE}.apps"
# The top-level files that are commands' shims (they may import their app) and what the
# core is: every other module, the classic facades included.
SHIMS = {"video", "batch", "compare", "reproduce", "benchmark"}
MAX_MODULE_LINES = 500


def core_modules(modules):
    return sorted(m for m in modules if not (m == APPS or m.startswith(APPS + ".")) and m not in SHIMS)


def test_the_core_never_imports_the_apps():
    graph = import_graph()
    apps = {m for m in graph if m == APPS or m.startswith(APPS + ".")}
    problems = [describe(graph, chain) for m in core_modules(graph)
                if (chain := path_between(graph, m, apps))]
    assert not problems, "the core imports the commands' code (apps/):\n  " + "\n  ".join(problems)


def module_aliases(tree, module, is_package, modules):
    """Names a module binds by import to a project module: {local name: project module}."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found[alias.asname or alias.name.partition(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom):
            for target, _ in imported_names(ast.Module(body=[node], type_ignores=[]), module, is_package):
                name = target.rpartition(".")[2]
                local = next((a.asname or a.name for a in node.names if a.name == name), None)
                if target in modules and local:
                    found[local] = target
    return found


def foreign_assignments(tree, aliases):
    """(line, text) of every assignment to an attribute of an imported project module (or to
    an item of one of its attributes), and of every object.__setattr__ call."""
    def is_module(node):
        return isinstance(node, ast.Name) and node.id in aliases

    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                base = t.value if isinstance(t, ast.Subscript) else t
                if isinstance(base, ast.Attribute) and is_module(base.value):
                    yield node.lineno, ast.unparse(t)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            if func.attr == "__setattr__" and isinstance(func.value, ast.Name) and func.value.id == "object":
                yield node.lineno, "object.__setattr__(...)"
            if func.attr in ("__setitem__", "update", "setdefault") and isinstance(func.value, ast.Attribute) \
                    and is_module(func.value.value):
                yield node.lineno, ast.unparse(func)


def test_no_shipped_module_assigns_an_attribute_of_another_module():
    modules = project_modules()
    found = []
    for name, (path, is_package) in sorted(modules.items()):
        tree = parse(path)
        for line, text in foreign_assignments(tree, module_aliases(tree, name, is_package, modules)):
            found.append(f"{os.path.relpath(path, ROOT)}:{line}: {text}")
    assert not found, "shipped code changes another module's globals:\n  " + "\n  ".join(found)


def test_every_package_module_has_its_test_file():
    missing = []
    for name, (path, is_package) in sorted(project_modules().items()):
        if is_package or not name.startswith(PACKAGE + "."):
            continue
        expected = f"test_{name.rpartition('.')[2]}.py"
        if not os.path.isfile(os.path.join(TESTS_DIR, expected)):
            missing.append(f"{os.path.relpath(path, ROOT)} -> tests/{expected}")
    assert not missing, "package modules without a test file of their own:\n  " + "\n  ".join(missing)


def test_no_test_module_imports_another_test_module():
    test_modules = {n[:-3] for n in os.listdir(TESTS_DIR) if n.startswith("test_") and n.endswith(".py")}
    found = []
    for name in sorted(test_modules):
        path = os.path.join(TESTS_DIR, name + ".py")
        for target, line in imported_names(parse(path), name, False):
            if target.partition(".")[0] in test_modules:
                found.append(f"tests/{name}.py:{line}: imports {target}")
    assert not found, ("test modules import other test modules (shared helpers belong in conftest.py "
                       "or weights_factory.py):\n  " + "\n  ".join(sorted(set(found))))


def test_no_module_is_over_500_lines():
    long = []
    for folder in (ROOT, os.path.join(ROOT, PACKAGE), TESTS_DIR):
        for dirpath, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", ".git")] if dirpath != ROOT else []
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(dirpath, f)
                    with open(path, encoding="utf-8") as fh:
                        count = sum(1 for _ in fh)
                    if count > MAX_MODULE_LINES:
                        long.append(f"{os.path.relpath(path, ROOT)} ({count} lines)")
    assert not long, f"modules over {MAX_MODULE_LINES} lines:\n  " + "\n  ".join(sorted(long))


def test_the_new_checks_catch_what_they_look_for():
    tree = ast.parse("import stylize\nfrom . import images as im\nimport os\n"
                     "stylize.session_config = 1\nim.X['k'] = 2\nos.environ['A'] = 'b'\n"
                     "object.__setattr__(n, 'a', 1)\nstylize.LOSS_SCALES.update({})\nlocal.attr = 3\n")
    modules = {"stylize": None, f"{PACKAGE}.images": None, PACKAGE: None}
    aliases = module_aliases(tree, f"{PACKAGE}.mod", False, modules)
    assert aliases == {"stylize": "stylize", "im": f"{PACKAGE}.images"}
    lines = [line for line, _ in foreign_assignments(tree, aliases)]
    assert lines == [4, 5, 7, 8]
