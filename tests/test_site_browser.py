"""The teaching site and the report as a student reads them: in headless Chromium, offline, at
1280 px (a laptop) and 390 px (a phone).

Every page of the built site and a report page are loaded from disk with every network request
refused and recorded. On each the test checks that nothing was asked of the network, that every
formula is MathML with a size, that no display formula or table is clipped at 1280 px, that every
figure has loaded and has a caption under it and is shown large enough for its text to read (on a
phone a wide figure scrolls inside its own box), that no run's table scrolls sideways at 1280 px,
and that a phone needs no sideways scrolling of the page. It
saves a full-page screenshot of each (``ENTROPY_RL_SCREENSHOTS=folder`` keeps them).

It needs Chromium (``/usr/bin/chromium``, Debian's ``chromium`` package, or ``CHROMIUM=path``) and
the ``playwright`` package to drive it; without either it skips, saying which is missing.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
from pathlib import Path

import pytest

from entropy_rl.figures import READABLE_SCALE
from entropy_rl.report import acceptance_markdown, method_table_markdown, render_report, run_stamp

REPO = Path(__file__).resolve().parents[1]


CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
WIDTHS = (1280, 390)
# the flags a closed network needs: without them Chromium keeps calling home (and is refused)
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

# the header (first three cells) of each table the run generates (docs/tables/, included by the
# chapters): on a phone one may scroll sideways in its own box, never the page
RUN_TABLES = [
    "|".join(
        cell.strip() for cell in table.read_text().split("\n", 1)[0].strip("| ").split("|")[:3]
    )
    for table in sorted((REPO / "docs" / "tables").glob("*.md"))
]
# what the page measures of itself, in the browser
MEASURE = """([width, runTables]) => {
  const out = {mathRaw: 0, mathEmpty: 0, clipped: [], images: [], uncaptioned: []};
  const article = document.querySelector('article') || document.body;
  const right = article.getBoundingClientRect().right + 1;
  out.arithmatex = document.querySelectorAll('.arithmatex').length;
  out.math = document.querySelectorAll('math').length;
  for (const m of document.querySelectorAll('math')) {
    const box = m.getBoundingClientRect();
    if (box.width <= 0 || box.height <= 0) out.mathEmpty += 1;
  }
  out.scrolling = [];
  for (const el of document.querySelectorAll('div.arithmatex, table')) {
    const box = el.getBoundingClientRect();
    const wide = box.right > right || el.scrollWidth > el.clientWidth + 1;
    if (width < 1000 || !wide) continue;
    const head = [...el.querySelectorAll('th')].slice(0, 3).map(th => th.textContent.trim()).join('|');
    const scrolls = ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
    // a run's generated table wider than the column scrolls inside its own box; anything else
    // wider than the text column at 1280 px is clipped
    if (el.tagName === 'TABLE' && runTables.includes(head) && scrolls) out.scrolling.push(head);
    else out.clipped.push(el.tagName + ': ' + el.textContent.slice(0, 60));
  }
  for (const img of article.querySelectorAll('img')) {
    out.images.push([img.getAttribute('src'), img.naturalWidth, img.getBoundingClientRect().width]);
    let holder = img.closest('p, figure') || img;
    let next = holder.nextElementSibling;
    const caption = img.closest('figure') ? img.closest('figure').querySelector('figcaption') : null;
    const italic = next && next.tagName === 'P' && next.firstElementChild &&
      next.firstElementChild.tagName === 'EM' && next.textContent.trim().startsWith(next.firstElementChild.textContent.trim());
    if (!caption && !italic) out.uncaptioned.push(img.getAttribute('src'));
  }
  out.pageWidth = document.documentElement.scrollWidth;
  return out;
}"""


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt install chromium, or set CHROMIUM=path)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("ENTROPY_RL_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_offline(browser, path: Path, width: int, shot: Path) -> tuple[dict, list[str]]:
    """Load ``path`` at ``width`` px with the network refused; what the page measured of itself,
    and every request that tried to leave the machine."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    refused: list[str] = []

    def route(request_route):
        url = request_route.request.url
        if url.startswith(("file://", "data:")):
            request_route.continue_()
        else:
            refused.append(url)
            request_route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_timeout(100)
    measured = page.evaluate(MEASURE, [width, RUN_TABLES])
    page.screenshot(path=str(shot), full_page=True)
    context.close()
    return measured, refused


def site_pages(site: Path) -> list[Path]:
    """The site's pages; ``tables/`` holds the run's tables that the chapters include."""
    return sorted(p for p in site.rglob("index.html") if not {"assets", "tables"} & set(p.parts))


@pytest.mark.slow
def test_every_page_reads_offline_at_laptop_and_phone_width(site, browser, shots):
    pages = site_pages(site)
    assert len(pages) >= 11, pages  # the quick start, nine chapters and the glossary
    total_math = 0
    for path in pages:
        name = path.parent.relative_to(site).as_posix().replace("/", "_") or "index"
        for width in WIDTHS:
            measured, refused = read_offline(browser, path, width, shots / f"{name}_{width}.png")
            where = f"{name} at {width} px"
            assert not refused, (where, refused[:3])
            assert measured["math"] == measured["arithmatex"] and not measured["mathEmpty"], (
                where,
                measured,
            )
            assert not measured["clipped"], (where, measured["clipped"])
            assert all(w > 0 for _, w, _ in measured["images"]), (where, measured["images"])
            # a figure's 10 pt text reads at 8 px and more: shown at READABLE_SCALE of its
            # pixels or larger (on a phone it scrolls in its own box, site_hooks/figures.py)
            small = [
                (src, round(shown / w, 2))
                for src, w, shown in measured["images"]
                if src.endswith(".png") and "figures/" in src and shown < READABLE_SCALE * w - 1
            ]
            assert not small, (where, small)
            # every run's table fits the text column of a laptop whole, no sideways scroll
            assert width < 1000 or not measured["scrolling"], (where, measured["scrolling"])
            assert not measured["uncaptioned"], (where, measured["uncaptioned"])
            assert measured["pageWidth"] <= width + 1, (where, measured["pageWidth"])
            total_math += measured["math"] if width == WIDTHS[0] else 0
    assert total_math >= 20, total_math  # the formulas of the chapters, all rendered


def test_the_token_page_reads_offline_at_laptop_and_phone_width(site, browser, shots):
    """The token-entropy page the collapse chapter frames (docs/figures/token_entropy.html, made
    by the pipeline): offline, and no sideways scroll of the page at either width."""
    page = site / "figures" / "token_entropy.html"
    assert page.exists(), "the site lacks the token page"
    for width in WIDTHS:
        measured, refused = read_offline(browser, page, width, shots / f"token_entropy_{width}.png")
        assert not refused, (width, refused[:3])
        assert not measured["clipped"], (width, measured["clipped"])
        assert measured["pageWidth"] <= width + 1, (width, measured["pageWidth"])


def _figure_png() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3))  # two panels' width: 1,350 px at the figures' dpi
    ax.plot([0, 1, 2], [0.2, 0.5, 0.6])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150)
    plt.close(fig)
    return buffer.getvalue()


def test_the_report_reads_on_a_phone_with_its_table_whole(browser, shots, tmp_path):
    checks = [
        {"check": "early-third fit predicts final accuracy (|error|)", "value": 0.046,
         "target": "<= 0.05", "pass": True},
        {"check": "payoff: Clip-Cov - GRPO held-out greedy accuracy", "value": 0.161,
         "detail": "95% CI +0.062 to +0.253", "target": ">= 0.05", "pass": True},
    ]  # fmt: skip
    table = [
        {"method": "grpo", "entropy_final": {"mean": 0.002, "std": 0.0, "n": 1}},
        {"method": "clip_cov", "entropy_final": {"mean": 0.02, "std": 0.004, "n": 3}},
    ]
    figure = tmp_path / "law.png"
    figure.write_bytes(_figure_png())
    sections = [
        {"heading": "Science acceptance", "table": acceptance_markdown(checks)},
        {"heading": "Methods", "table": method_table_markdown(table),
         "figures": [{"path": figure, "caption": "The law on GRPO's runs."}]},
    ]  # fmt: skip
    page = tmp_path / "report.html"
    page.write_text(render_report("study", sections, stamp=run_stamp("config/config.yaml")))
    assert base64.b64encode(figure.read_bytes())[:20].decode() in page.read_text()
    for width in WIDTHS:
        measured, refused = read_offline(browser, page, width, shots / f"report_{width}.png")
        assert not refused, refused
        assert all(w > 0 for _, w, _ in measured["images"]) and not measured["uncaptioned"], (
            measured
        )
        # the figure keeps its readable size on a phone, scrolling in its own box
        assert all(shown >= READABLE_SCALE * w - 1 for _, w, shown in measured["images"]), measured
        assert measured["pageWidth"] <= width + 1, (width, measured["pageWidth"])
