from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

import shipml.evaluate
from shipml.evaluate import encode_target, evaluate, positive_proba, write_report
from tests.unit.evaluate.evaluate_helpers import FEATURES, config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def images(html: str) -> list[bytes]:
    return [base64.b64decode(s) for s in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_report_writes_json_and_a_self_contained_html(
    tmp_path: Path, data: Any, logreg: Any, dummy: Any
) -> None:
    _, _, X, y = data
    cfg = config(
        thresholds={"roc_auc": {"min": 0.99}},
        robustness={"enabled": True},
        champion={"enabled": True},
    )
    result = evaluate(logreg, X[FEATURES], y, cfg, champion=dummy)

    json_path, html_path = write_report(
        result,
        encode_target(y, logreg),
        positive_proba(logreg, X[FEATURES]),
        tmp_path / "out",
        title="credit <v3>",
    )

    assert json_path == tmp_path / "out" / "evaluation.json"
    assert html_path == tmp_path / "out" / "report.html"
    saved = json.loads(json_path.read_text())
    assert saved == {"title": "credit <v3>", **json.loads(json.dumps(result.to_dict()))}
    assert saved["passed"] is False

    html = html_path.read_text()
    pngs = images(html)
    assert len(pngs) == 4
    assert all(p.startswith(PNG_MAGIC) and len(p) > 1000 for p in pngs)
    assert "credit &lt;v3&gt;" in html and "credit <v3>" not in html
    for g in result.gates:
        assert g.name in html
    assert "roc_auc 0.8" in html and "&lt; min 0.990" in html  # the failing line, escaped
    assert ">FAILED<" in html
    assert html.count('<td class="fail">FAIL</td>') == 2  # roc_auc min, robustness.missing
    assert "http://" not in html and "https://" not in html  # nothing fetched from outside


def test_report_survives_labels_with_one_class(tmp_path: Path, data: Any, logreg: Any) -> None:
    _, _, X, y = data
    positives = (y == 1).to_numpy()
    X1, y1 = X[FEATURES][positives], y[positives]
    result = evaluate(logreg, X1, y1, config(thresholds={"roc_auc": {"min": 0.5}}))

    json_path, html_path = write_report(
        result, np.ones(len(y1), dtype=int), positive_proba(logreg, X1), tmp_path, title="t"
    )

    assert json.loads(json_path.read_text())["metrics"]["roc_auc"] is None
    assert "roc_auc is undefined" in html_path.read_text()
    assert len(images(html_path.read_text())) == 4


def test_public_api_is_pinned() -> None:
    assert sorted(shipml.evaluate.__all__) == [
        "EvaluationResult",
        "GateResult",
        "LOWER_IS_BETTER",
        "METRICS",
        "compare_to_champion",
        "compute_metrics",
        "encode_target",
        "evaluate",
        "positive_index",
        "positive_proba",
        "write_report",
    ]


def test_importing_the_package_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys, shipml.evaluate, shipml.evaluate.gates, shipml.evaluate.report\n"
        "heavy = ['sklearn', 'fairlearn', 'matplotlib', 'pandas', 'jinja2']\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
