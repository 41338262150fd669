"""The backtest report as a browser lays it out (headless Chromium): no two labels of a chart
overlap, and the trader's tables are in the DOM.

Chromium is a Debian package (`chromium-headless-shell`); `make test` installs it when it can.
Where it is missing the test is skipped with that reason. The report itself has no script: the
test appends one to a copy, which measures every label's box after layout and writes the result
into the page, and reads it back from `--dump-dom`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from backtest.report import render_report
from backtest.runner import BacktestResult
from tests.test_backtest_report import two_runs

__all__ = ["two_runs"]

BROWSER = next(
    (b for b in ("chromium-headless-shell", "chromium", "chromium-browser") if shutil.which(b)), None
)

MEASURE = """
<script>
const out = {overlaps: [], charts: 0, labels: 0, dailyRows: 0, spreadRows: 0};
const intersects = (a, b) =>
  a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
for (const svg of document.querySelectorAll('svg.chart')) {
  out.charts += 1;
  const labels = [...svg.querySelectorAll('text.ylabel, text.guidelabel, text.legend, text.title')]
    .map(t => ({text: t.textContent, cls: t.getAttribute('class'), box: t.getBBox()}));
  out.labels += labels.length;
  for (let i = 0; i < labels.length; i++)
    for (let j = i + 1; j < labels.length; j++)
      if (intersects(labels[i].box, labels[j].box))
        out.overlaps.push(svg.getAttribute('aria-label') + ': ' + labels[i].text + ' / ' + labels[j].text);
}
out.dailyRows = document.querySelectorAll('table.daily tr').length - 1;
out.spreadRows = [...document.querySelectorAll('table.figures th')]
  .filter(th => /average (sell|buy) price|spread captured/i.test(th.textContent)).length;
const pre = document.createElement('pre');
pre.id = 'measured';
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>
"""


@pytest.mark.skipif(BROWSER is None, reason="no headless Chromium (apt-get install chromium-headless-shell)")
def test_report_labels_do_not_overlap_in_a_browser(
    two_runs: tuple[BacktestResult, BacktestResult], tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_report([two_runs[0]]).replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    assert BROWSER is not None
    dom = subprocess.run(
        [BROWSER, "--no-sandbox", "--disable-gpu", "--headless", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    match = re.search(r'<pre id="measured">(.*?)</pre>', dom)
    assert match, dom[-2000:]
    measured = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert measured["charts"] == 4 and measured["labels"] > 20
    assert measured["overlaps"] == []
    assert measured["dailyRows"] == 2  # 2022-10-05 and 2022-10-06
    assert measured["spreadRows"] >= 3  # average sell and buy prices, spread captured
