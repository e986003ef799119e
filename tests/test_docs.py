"""The teaching site: every Python block of docs/ runs, and the site builds with --strict."""

from __future__ import annotations

import functools
import re
import sys
import types
from collections.abc import Set
from pathlib import Path

import pytest

from entropy_rl.losses import registry
from tests.tables import same_columns

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
PAGES = sorted((REPO / "docs").glob("*.md"))


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_python_blocks_in_the_docs_run(page, monkeypatch):
    # examples may register losses: give them a registry of their own
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    module = types.ModuleType(f"docs_{page.stem}")  # a real module: dataclasses look theirs up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for block in python_blocks(page):
        exec(compile(block, str(page), "exec"), module.__dict__)


CHAPTERS = [REPO / "docs" / f"{name}.md" for name in (
    "index", "collapse", "law", "theory", "interventions", "gpu", "extend", "reviewers",
    "benchmarks", "design",
)]  # fmt: skip


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_states_its_goals_its_expected_output_and_an_exercise(page):
    text = page.read_text()
    assert '!!! abstract "In this chapter"' in text and "**You will learn**" in text
    assert "**Expected output:**" in text
    exercise = text.split("\n## Exercise\n", 1)
    assert len(exercise) == 2, "no '## Exercise' section"
    assert "*What you should see:*" in exercise[1]
    # an exercise's claim is checked: an assertion in a block that runs, or a named test
    assert "assert " in exercise[1] or "tests/" in exercise[1]


def test_docs_site_builds_strictly(site):
    assert (site / "theory" / "index.html").is_file()


REMOTE = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]+\"")
CODE = re.compile(r"<(code|pre)\b.*?</\1>", re.S)


def test_the_site_loads_nothing_from_the_network_and_its_maths_is_rendered(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > len(PAGES)
    for page in pages:
        text = page.read_text()
        assert not REMOTE.findall(text), (page, REMOTE.findall(text)[:3])
        prose = CODE.sub("", text)  # TeX in code examples is meant to show as TeX
        for raw in ("\\[", "\\]", "\\(", "\\)", "$$"):
            assert raw not in prose, (page.relative_to(site), raw)
    theory = (site / "theory" / "index.html").read_text()
    formulas = theory.count('class="arithmatex"')
    assert formulas >= 15 and theory.count("<math ") == formulas
    assert "<mfrac>" in theory and "<msub>" in theory  # real MathML, not text


SOURCE_DOCSTRING = re.compile(r'<span class="sd">.*?</span>', re.S)  # in a "source" listing
ROLE = re.compile(r":(?:func|class|meth|mod|attr):(?:`|<code>)")


def test_rendered_docstrings_show_no_sphinx_roles(site):
    """A docstring's :func:`x` renders as the code span `x` (site_hooks/roles.py); only the
    source listings keep the text as written."""
    for page in sorted(site.rglob("*.html")):
        rendered = SOURCE_DOCSTRING.sub("", page.read_text())
        assert not ROLE.findall(rendered), (page.relative_to(site), ROLE.findall(rendered)[:3])
    assert "<code>adaptive_coef</code>" in (site / "interventions" / "index.html").read_text()


IMAGE = re.compile(r"^!\[[^\]]*\]\((figures/[^)]+)\)\s*$", re.M)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_figure_on_a_page_has_a_caption_under_it(page):
    """A figure is followed by its caption: a paragraph that opens in italics and says what the
    figure shows (``*What it plots.* What to see in it.``)."""
    text = page.read_text()
    for match in IMAGE.finditer(text):
        after = text[match.end() :].lstrip("\n")
        caption = after.split("\n\n", 1)[0]
        assert re.match(r"\*[^*\s][^*]*\*", caption), (page.name, match.group(1), caption[:80])
        assert len(caption) > 60, (page.name, match.group(1), caption)


def test_the_figure_hook_gives_every_figure_its_readable_width():
    """site_hooks/figures.py: each figure's <img> gets a minimum width of READABLE_SCALE times
    its pixels (read from the PNG), so a phone scrolls a wide figure instead of shrinking it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("figures", REPO / "site_hooks" / "figures.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    png = next((REPO / "docs" / "figures").glob("*.png"))
    from PIL import Image

    width = Image.open(png).size[0]
    assert hook.png_width(png) == width
    html = f'<p><img alt="x" src="../figures/{png.name}" /></p><img src="elsewhere.png">'
    out = hook.readable(html, REPO / "docs")
    assert f'style="min-width: {round(width * hook.READABLE_SCALE)}px">' in out
    assert out.endswith('<img src="elsewhere.png">')  # not a figure of docs/figures: unchanged
    with pytest.raises(ValueError, match="not a PNG"):
        hook.png_width(REPO / "docs" / "index.md")


def test_every_figure_in_docs_figures_is_shown_on_a_page():
    shown = {m for page in PAGES for m in IMAGE.findall(page.read_text())}
    shown |= set(re.findall(r"\((figures/[^)]+\.html)\)", "".join(p.read_text() for p in PAGES)))
    on_disk = {f"figures/{f.name}" for f in (REPO / "docs" / "figures").iterdir()}
    assert not (shown - on_disk), sorted(shown - on_disk)  # a page shows a missing figure
    # every PNG is on some page (a PDF is the same figure, for print)
    unused = sorted(f for f in on_disk - shown if f.endswith(".png"))
    assert not unused, unused


SNIPPET = re.compile(r'^\s*--8<-- "([^"]+)"$', re.M)
CODE_OR_MATH = re.compile(r"```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$", re.S)


def _typed_tables(text: str) -> list[list[str]]:
    """The header cells of each markdown table typed into a page (not included from a file)."""
    heads, previous = [], ""
    for line in text.splitlines():
        if line.startswith("|") and not previous.startswith("|"):
            heads.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        previous = line
    return heads


def test_the_runs_tables_are_included_never_typed():
    """A table of a run (methods, law, acceptance) reaches a page by ``--8<--`` from docs/tables/,
    which the pipeline writes: a typed copy would drift from the run. A table is a copy when each
    of its columns is one a run's table has."""
    from entropy_rl.report import TABLE_COLUMNS

    generated = {title for part in TABLE_COLUMNS.values() for _, title in part} - {"method", "loss"}
    for table in (REPO / "docs" / "tables").glob("*.md"):
        for head in _typed_tables(table.read_text()):
            generated |= set(head) - {"method", "id", "loss"}
    for page in PAGES:
        for head in _typed_tables(CODE_OR_MATH.sub("", page.read_text())):
            columns = set(head) - {"method"}
            # every column one a run's table has: a copy of a run's table (an experiment's own
            # table, with columns of its own, is the experiment's record)
            assert not (len(columns) >= 2 and columns <= generated), (page.name, head)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_number_of_an_included_table_is_typed_in_the_prose(page):
    """The prose around a run's table does not repeat its numbers (they would drift when the run
    changes): it says what to see and leaves the numbers to the table."""
    text = page.read_text()
    # accuracies, R², ratios: the numbers prose would quote (small ones, a coefficient like
    # 0.001 or a spread like ± 0.005, coincide by chance)
    number = re.compile(r"(?<![\d.])(?:[1-9]\d*|0)\.\d{3}(?!\d)")
    numbers = set()
    for name in SNIPPET.findall(text):
        numbers |= set(number.findall((REPO / "docs" / "tables" / name).read_text()))
    prose = CODE_OR_MATH.sub("", SNIPPET.sub("", text))
    # an experiment's own table is its record (a run's table typed in is the test above)
    prose = "\n".join(line for line in prose.splitlines() if not line.lstrip().startswith("|"))
    typed = {n for n in number.findall(prose) if n in numbers and float(n) >= 0.1}
    assert not typed, (page.name, sorted(typed))


# a decimal number as prose writes it (not part of a version, a date or a longer number)
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\d.]*\d)")
# not results: a link, an arXiv number, a section of the paper, a version of a package, a machine's
# memory, a tolerance in scientific notation
NOT_RESULTS = re.compile(
    r"https?://[^)\s]+|arXiv \d+\.\d+|§\s?\d+(?:\.\d+)*|(?:Python|torch|CUDA) [\d.]+"
    r"|\d+(?:\.\d+)? GiB|\d+\.\d+e[-+]?\d+"
)


@functools.cache
def _settings_and_thresholds() -> frozenset[str]:
    """Decimals that are definitions, not results: each config's settings and each claim's
    threshold (docs/tables/claims.md). Read from those files, so they cannot drift either."""
    found = set(DECIMAL.findall((REPO / "docs" / "tables" / "claims.md").read_text()))
    for config in (REPO / "config").rglob("*.yaml"):
        found |= set(DECIMAL.findall(re.sub(r"#.*", "", config.read_text())))
    return frozenset(found)


def typed_decimals(text: str, included: set[str], allowed: Set[str]) -> list[str]:
    """The decimals of a page's prose that no included file, setting or threshold holds: typed
    results, which would drift from the run. A table typed into a page is an experiment's record
    (a run's table typed in is caught by test_the_runs_tables_are_included_never_typed)."""
    prose = NOT_RESULTS.sub("", CODE_OR_MATH.sub("", SNIPPET.sub("", text)))
    lines = [line for line in prose.splitlines() if not line.lstrip().startswith("|")]
    known = included | allowed
    return [n for line in lines for n in DECIMAL.findall(line) if n not in known]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_decimal_in_a_pages_prose_comes_from_a_file_the_pipeline_writes(page):
    """A number in prose is a run's number only if the page includes the file it comes from
    (docs/tables/, rewritten by each run) or it is a setting or a threshold; anything else is a
    result typed in, and fails here with the numbers it found."""
    text = page.read_text()
    included = set()
    for name in SNIPPET.findall(text):
        included |= set(DECIMAL.findall((REPO / "docs" / "tables" / name).read_text()))
    typed = typed_decimals(text, included, _settings_and_thresholds())
    assert not typed, (page.name, typed)


def test_the_typed_decimal_check_catches_a_result_and_spares_what_is_not_one():
    allowed = {"0.5"}
    text = (
        "GRPO ends at 0.731 greedy (arXiv 2505.22617, §3.2, Python 3.11, 23.5 GiB, within 1.3e-8)"
        " at T = 0.5, `0.42`."
    )
    assert typed_decimals(text, set(), allowed) == ["0.731"]
    assert typed_decimals(text, {"0.731"}, allowed) == []
    assert typed_decimals("| a record | 0.731 |", set(), allowed) == []  # a typed table


def test_every_test_the_reliability_section_names_exists():
    design = (REPO / "docs" / "design.md").read_text()
    section = design[design.index("## Reliability") : design.index("## Exercise")]
    named = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", section)
    assert len(named) >= 20
    for path, name in named:
        source = (REPO / path).read_text()
        assert re.search(rf"^def {name}\(", source, re.MULTILINE), f"{path}::{name}"


# The paper's numbering (arXiv 2505.22617v1): each numbered statement the index may cite, with a
# word its row's "What" must hold, so a row cannot pair an equation with the wrong statement.
PAPER_NUMBERING = {
    "Eq. 3": "advantage", "Eq. 4": "surrogate", "Eq. 5": "entropy", "Eq. 6": "law",
    "Eq. 10": "covariance", "Eqs. 11-12": "Clip-Cov", "Eqs. 13-14": "KL-Cov",
    "Lemma 1": "covariance", "Proposition 1": "policy-gradient step", "Theorem 1": "policy gradient",
    "Theorem 2": "natural policy gradient", "Table 2": "clip-higher",
}  # fmt: skip
CITATION = re.compile(r"Cui et al\., 2025, ([^)]*)\)")
INDEX_ROW = re.compile(r"^\| (.+?) \| (.+?) \| `([\w.]+)` \| `([\w/.]+)` \|$", re.M)


def _paper_index() -> list[tuple[str, str, str, str]]:
    return INDEX_ROW.findall((REPO / "docs" / "paper.md").read_text())


def _cited_functions() -> dict[str, str]:
    """Every function in src/ whose docstring cites the paper: its dotted name -> the place."""
    import ast

    cited = {}
    for path in sorted((REPO / "src" / "entropy_rl").rglob("*.py")):
        module = ".".join(path.relative_to(REPO / "src").with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and (doc := ast.get_docstring(node)):
                for place in CITATION.findall(" ".join(doc.split())):
                    cited[f"{module}.{node.name}"] = place
    return cited


def test_the_paper_index_names_functions_that_exist_where_it_says_and_cite_their_row():
    import importlib
    import inspect

    rows = _paper_index()
    assert len(rows) >= 15
    for place, _, dotted, file in rows:
        module, name = dotted.rsplit(".", 1)
        found = getattr(importlib.import_module(module), name)
        function = inspect.unwrap(getattr(found, "fn", found))  # a registered loss: its function
        assert Path(inspect.getsourcefile(function)) == REPO / file, dotted
        cited = CITATION.findall(" ".join(inspect.getdoc(function).split()))
        assert cited == [place], f"{dotted}'s docstring cites {cited}, the index {place!r}"


def test_every_citation_of_the_paper_in_the_code_is_in_the_index_by_the_papers_numbering():
    index = {dotted: (place, what) for place, what, dotted, _ in _paper_index()}
    cited = _cited_functions()
    assert cited.keys() == index.keys(), sorted(cited.keys() ^ index.keys())
    for dotted, (place, what) in index.items():
        assert place == cited[dotted]
        numbered = [key for key in PAPER_NUMBERING if re.search(rf"\b{re.escape(key)}\b", place)]
        assert all(PAPER_NUMBERING[key].lower() in what.lower() for key in numbered), (place, what)
        assert re.fullmatch(r"(§[2-4](\.\d)?(, )?)?((Eqs?\. [\d-]+|Lemma 1|Proposition 1|"
                            r"Theorem [12]|Table 2))?", place), place  # fmt: skip


STAMPS = sorted((REPO / "docs" / "tables").glob("*provenance.md"))


def test_a_stamp_vouches_for_the_files_it_names_and_a_changed_file_breaks_it(tmp_path):
    from entropy_rl.provenance import file_digest, provenance_markdown, read_provenance

    table = tmp_path / "methods.md"
    table.write_text("| method | x |\n|---|---|\n| grpo | 0.5 |\n")
    stamp = read_provenance(provenance_markdown("embedded", "config/config.yaml", [table], "d"))
    assert stamp["profile"] == "embedded" and stamp["files"] == {"methods.md": file_digest(table)}
    assert stamp["commit"].split()[0] != "unknown"  # the tests run in a git checkout
    table.write_text(table.read_text().replace("0.5", "0.6"))  # edited after the run
    assert stamp["files"]["methods.md"] != file_digest(table)


@pytest.mark.parametrize("stamp", STAMPS, ids=lambda p: p.name)
def test_every_docs_stamp_names_a_commit_of_this_history_and_its_files_unchanged(stamp):
    """docs/tables/<prefix>provenance.md is written by the pipeline beside the tables and
    figures it copies: each file it names still has the digest the run gave it (a table or
    figure edited, or left from another run, is stale), and its commit is one of this
    repository's history."""
    import subprocess

    from entropy_rl.provenance import file_digest, read_provenance

    found = read_provenance(stamp.read_text())
    stale = []
    for name, digest in found["files"].items():
        folder = "figures" if name.endswith(".png") else "tables"
        path = REPO / "docs" / folder / name
        if not path.exists() or file_digest(path) != digest:
            stale.append(name)
    assert not stale, f"{stamp.name}: rerun profile {found['profile']!r}; stale: {stale}"
    commit = str(found["commit"]).split()[0]
    known = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO)
    assert known.returncode == 0, f"{stamp.name}: commit {commit} is not in this history"


def test_every_table_in_docs_says_what_made_it():
    """Every file of docs/tables/ is vouched for: a pipeline stamp names it (the run's commit,
    config and CPU), or it is the claims table (``claims_markdown()``, checked equal by
    tests/analysis/test_claims.py), or it is a benchmark's record whose first line names the
    command and the CPU it ran on."""
    from entropy_rl.provenance import read_provenance

    stamped = {"claims.md"}
    for stamp in STAMPS:
        stamped |= {stamp.name, *read_provenance(stamp.read_text())["files"]}
    unvouched = {}
    for table in sorted((REPO / "docs" / "tables").glob("*.md")):
        first = table.read_text().splitlines()[0]
        record = re.fullmatch(r"\*.+\b(?:Intel|AMD|ARM|Apple)\b.+\*", first)
        if table.name not in stamped and not record:
            unvouched[table.name] = first[:80]
    assert not unvouched, f"tables no stamp names and with no record line: {unvouched}"


def _verdicts(table: str) -> dict[str, str]:
    """An acceptance table's verdict per check (its first and last columns)."""
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ")]
    return {row[0].lstrip("| "): row[-1].rstrip(" |") for row in rows[1:]}


def test_the_confirmation_draw_never_reads_pass_where_the_default_reads_fail():
    """docs/reviewers.md says of the confirmation study's four fresh base models that a verdict
    over base models lets two draws agree: no row reads pass on one draw and FAIL on the other."""
    tables = REPO / "docs" / "tables"
    default = _verdicts((tables / "acceptance.md").read_text())
    fresh = _verdicts((tables / "confirmation_acceptance.md").read_text())
    shared = default.keys() & fresh.keys()
    assert len(shared) >= 20, sorted(shared)
    opposite = {
        c: (default[c], fresh[c]) for c in shared if {default[c], fresh[c]} == {"pass", "FAIL"}
    }
    assert not opposite, opposite


# the profiles whose tables the docs include beside the default's (docs/tables/<prefix><name>.md)
PROFILE_PREFIXES = ("saturating_", "confirmation_", "interventions_")
# tables whose profile has not run since the code changed their columns: each names the rerun
STALE: dict[str, str] = {}


def test_every_profiles_table_has_the_columns_of_the_defaults_or_is_named_stale():
    """A profile's copy of a table (docs/tables/<prefix><name>.md) has the columns of the default
    profile's (docs/tables/<name>.md, rerun with today's code): a profile whose code changed the
    columns since it ran is stale, and this names it with the command that reruns it."""
    tables = REPO / "docs" / "tables"
    stale = set()
    for table in sorted(tables.glob("*.md")):
        prefix = next((p for p in PROFILE_PREFIXES if table.name.startswith(p)), None)
        default = tables / table.name[len(prefix) :] if prefix else None
        if default is None or not default.exists():
            continue
        if not same_columns(table.read_text(), default.read_text()):
            stale.add(table.name)
    unnamed = {name: "rerun its profile" for name in stale - set(STALE)}
    assert not unnamed, f"stale against today's columns: {unnamed}"
    rerun = set(STALE) - stale
    assert not rerun, f"no longer stale, take out of STALE: {sorted(rerun)}"


# how the project was built or run, not what it does: sessions of work, budgets, CI, the history
# of a setting, the commit that brought something
HISTORY = re.compile(
    r"\b(?:sessions? of work|this session|last session|budget|\.ci/run|CI\b|was the default|"
    r"used to be|no longer|previously|the first one|(?:the )?commits? that added|we tried)",
    re.I,
)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_docs_speak_of_what_the_suite_does_not_of_how_it_was_built(page):
    prose = CODE_OR_MATH.sub("", page.read_text())
    found = [m.group(0) for m in HISTORY.finditer(prose)]
    assert not found, (page.name, found)


def test_the_history_wording_check_catches_what_it_names():
    for sentence in ("It was the default before.", "CI runs it.", "over its budget",
                     "the commit that added them", "run bash .ci/run"):  # fmt: skip
        assert HISTORY.search(sentence), sentence
    assert not HISTORY.search("a session fixture each, the pytest term")
