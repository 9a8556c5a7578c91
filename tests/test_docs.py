"""The README and docs/: every relative link (and its #anchor) and every `examples/...`
path they name exists in the repository, and none names a path outside it; the README
stays a front door (12 KB at most) whose test command is the one CI runs."""

from __future__ import annotations

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md"] + sorted(os.path.join("docs", n) for n in os.listdir(os.path.join(ROOT, "docs"))
                              if n.endswith(".md"))
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
EXAMPLES_PATH = re.compile(r"(?<![\w./-])examples/[\w./-]*[\w/]")
# Absolute paths of a development machine, and the shared folder beside the checkout.
OUTSIDE = re.compile(r"\.\./shared\b|(?<![\w.])/(?:work|root|home|Users|mnt|tmp)/")
# Folders that a documented command creates (gitignored), named as where its output goes.
MADE_BY_COMMANDS = ("examples/compare/runs",)
README_LIMIT = 12_000  # bytes: the front door stays short, the studies live in docs/
TEST_COMMAND = "NEURAL_STYLE_VENV_TESTS=1 python -m pytest -q"


def read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


def without_code_blocks(text):
    return re.sub(r"```.*?```", "", text, flags=re.S)


def slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(name):
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", without_code_blocks(read(name)), flags=re.M)}


def links(name):
    for match in LINK.finditer(without_code_blocks(read(name))):
        target = match.group(1)
        if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            yield target


def test_the_docs_are_found():
    assert "README.md" in DOCS and os.path.join("docs", "python-api.md") in DOCS and len(DOCS) > 10


@pytest.mark.parametrize("name", DOCS)
def test_every_relative_link_and_anchor_exists(name):
    here = os.path.dirname(os.path.join(ROOT, name))
    broken = []
    for target in links(name):
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(here, path)) if path else os.path.join(ROOT, name)
        if not full.startswith(ROOT + os.sep) and full != ROOT:
            broken.append(f"{target}: outside the repository")
        elif not os.path.exists(full):
            broken.append(f"{target}: no such file")
        elif anchor and full.endswith(".md") and anchor not in anchors(os.path.relpath(full, ROOT)):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, f"{name}: " + "; ".join(broken)


@pytest.mark.parametrize("name", DOCS)
def test_every_examples_path_exists(name):
    missing = []
    for path in sorted(set(EXAMPLES_PATH.findall(read(name)))):
        base = os.path.join(os.path.dirname(name), path) if name.startswith("docs") and not os.path.exists(
            os.path.join(ROOT, path)) else path
        if path.startswith(MADE_BY_COMMANDS):
            continue
        if not os.path.exists(os.path.join(ROOT, path)) and not os.path.exists(os.path.join(ROOT, base)):
            missing.append(path)
    assert not missing, f"{name} names examples/ paths that do not exist: {missing}"


@pytest.mark.parametrize("name", DOCS)
def test_no_path_outside_the_repository(name):
    found = [f"line {text[:m.start()].count(chr(10)) + 1}: {text[m.start():m.start() + 40].splitlines()[0]}"
             for text in [read(name)] for m in OUTSIDE.finditer(text)]
    assert not found, f"{name} names paths outside the repository: {found}"


def test_the_readme_is_a_front_door_with_the_set_up_commands():
    text = read("README.md")
    assert len(text.encode("utf-8")) <= README_LIMIT, "the README grew past 12 KB: move studies to docs/"
    blocks = re.findall(r"```\n(.*?)```", text, flags=re.S)
    assert any(b.startswith("python neural_style.py --content examples/") for b in blocks)
    # the test command a reader copies is the one .ci/run runs
    assert TEST_COMMAND + "\n" in blocks
    variable, _, command = TEST_COMMAND.partition(" ")
    ci = read(os.path.join(".ci", "run")).splitlines()
    assert f"export {variable}" in ci and ci[-1] == command
    # and where the Python API example runs (issue 32: it failed outside the checkout)
    assert "pip install ." in text.split("## Python API", 1)[1].split("\n## ", 1)[0]


def test_the_settings_links_to_their_measurements_exist():
    # settings.py gives each default a reason in a line and a link to its measurement
    text = read(os.path.join("neural_style_tf", "settings.py"))
    found = re.findall(r"(docs/[\w-]+\.md)(?:#([\w-]+))?", text)
    assert len(found) >= 10
    broken = [f"{page}#{anchor}" for page, anchor in found
              if not os.path.isfile(os.path.join(ROOT, page)) or (anchor and anchor not in anchors(page))]
    assert not broken, f"settings.py links to missing pages or headings: {broken}"


def test_the_checks_catch_what_they_look_for():
    assert slug("The default on VGG-19 (the embedded network since issue 23)") == \
        "the-default-on-vgg-19-the-embedded-network-since-issue-23"
    assert slug("Size-independent weights: `--loss-scale classic|normalized`") == \
        "size-independent-weights---loss-scale-classicnormalized"
    assert list(LINK.finditer("![a [b]](x/y.png) [c](http://e) [d](#e)"))[0].group(1) == "x/y.png"
    assert EXAMPLES_PATH.findall("see `examples/results/a.jpg`, and examples/masks/.") == [
        "examples/results/a.jpg", "examples/masks/"]
    for bad in ("../shared/reference/x.png", "/work/shared/images/a.jpg", "--photo /root/x.jpg"):
        assert OUTSIDE.search(bad), bad
    for fine in ("docs/video.md", "a/work/b", "http://127.0.0.1:8000/"):
        assert not OUTSIDE.search(fine), fine
