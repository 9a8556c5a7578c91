"""The layout's rules, checked on the source: no import cycles, no TensorFlow at import
time, short functions, commands independent of each other, an empty package __init__,
no sys.path edits in the tests; and (issue 32) no package module importing the classic
facades, facades that re-export each name from its home, and a module map that matches
the tree. The modules and their import graph come from project_layout.py.

Pure Python (ast and one subprocess that imports the project without TensorFlow); fast.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections import defaultdict

from project_layout import (
    PACKAGE,
    ROOT,
    cycles,
    describe,
    import_graph,
    imported_names,
    parse,
    path_between,
    project_modules,
)

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




# ---------------------------------------------------------------- one home for every name (issue 32)

FACADES = ("stylize", "vgg")
MAP_PAGE, MAP_HEADING = os.path.join("docs", "README.md"), "## The package, module by module"


def test_no_package_module_imports_the_facades():
    found = [f"{name} imports {target} (line {line})" for name, targets in sorted(import_graph().items())
             if name.partition(".")[0] == PACKAGE for target, line in sorted(targets.items()) if target in FACADES]
    assert not found, "package modules import the classic facades, not the module of the name:\n  " + "\n  ".join(found)


def top_level_definitions(tree):
    """The names a module defines itself at its top level (def, class, assignment), not by import."""
    return ({n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
            | {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign)) for t in ast.walk(n)
               if isinstance(t, ast.Name) and isinstance(t.ctx, ast.Store)})


def facade_problems(name, modules):
    """A facade's faults: no literal __all__, a name in it twice or not imported, or imported
    from a module that does not define it (a re-export of a re-export)."""
    tree = parse(modules[name][0])
    declared = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                     and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)), None)
    if declared is None:
        return [f"{name}.py has no literal __all__"]
    # local name -> (home module, the name there): a classic name may be an alias (import X as Y)
    sources = {a.asname or a.name: (n.module, a.name) for n in tree.body if isinstance(n, ast.ImportFrom)
               for a in n.names}
    problems = [f"{name}.__all__ lists a name twice"] if len(set(declared)) != len(declared) else []
    for n in declared:
        home, original = sources.get(n, (None, n))
        if home not in modules:
            problems.append(f"{name}.{n}: in __all__ but not imported from a project module")
        elif original not in top_level_definitions(parse(modules[home][0])):
            problems.append(f"{name}.{n}: imported from {home}, which does not define it")
    return problems


def test_the_facades_re_export_each_name_from_its_home_module():
    problems = [p for facade in FACADES for p in facade_problems(facade, project_modules())]
    assert not problems, "the facades:\n  " + "\n  ".join(problems)


def module_map(text):
    """The paths in the map's code block: each line's first word, under the enclosing folder lines."""
    listed, folders = [], []  # folders: [(indent, name)]
    for line in text.split(MAP_HEADING, 1)[1].split("```", 2)[1].splitlines():
        if line.strip():
            indent, word = len(line) - len(line.lstrip()), line.split()[0]
            while folders and folders[-1][0] >= indent:
                folders.pop()
            if word.endswith("/"):
                folders.append((indent, word.rstrip("/")))
            else:
                listed.append("/".join([f for _, f in folders] + [word]))
    return listed


def test_the_module_map_lists_exactly_the_modules_in_the_tree():
    with open(os.path.join(ROOT, MAP_PAGE), encoding="utf-8") as f:
        listed = module_map(f.read())
    tree = {os.path.relpath(path, ROOT).replace(os.sep, "/") for path, _ in project_modules().values()}
    missing, stale = sorted(tree - set(listed)), sorted(set(listed) - tree)
    twice = sorted({p for p in listed if listed.count(p) > 1})
    assert not (missing or stale or twice), f"{MAP_PAGE}: missing {missing}, not in the tree {stale}, twice {twice}"
    # the checks themselves, on a snippet
    text = f"{MAP_HEADING}\n```\ntop.py  cmd\npkg/  p:\n    a.py  x\n    sub/  y\n        b.py  z\n    c.py  w\n```\n"
    assert module_map(text) == ["top.py", "pkg/a.py", "pkg/sub/b.py", "pkg/c.py"]
    snippet = "import os\nfrom x import y\nA = 1\nB: int = 2\nC, (D, E) = 3, (4, 5)\ndef f(): pass\nclass G: pass\n"
    assert top_level_definitions(ast.parse(snippet)) == {"A", "B", "C", "D", "E", "f", "G"}
