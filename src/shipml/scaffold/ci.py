"""The CI pipelines `shipml init --ci` writes: GitHub Actions and GitLab CI.

Both map shipml's stages to the same jobs: validate (ingest + validate) and test on every
push and merge request; train (ingest + train + evaluate + register) on the default branch;
build and deploy behind the protected `production` environment. Every job's real work is one
`shipml` command, wrapped so that exit 1 (a gate said no) and any other code (an error) are
reported differently, and followed by `shipml report --markdown` (the job summary on GitHub,
summary.md among the artifacts on GitLab; in the script itself, as GitLab's after_script may
not see the job's files).

Templates are plain text with `@@NAME@@` placeholders (GitHub's `${{ }}` and GitLab's `$VAR`
would clash with a template language); `@@GATE:ARGS@@` expands to the wrapped command.
"""

from __future__ import annotations

import re
import sys
from importlib.resources import files
from typing import Literal

from shipml import __version__

__all__ = ["CI_FILES", "CiKind", "default_pip_spec", "pipeline_files", "render"]

CiKind = Literal["github", "gitlab"]
CI_FILES: dict[CiKind, str] = {
    "github": ".github/workflows/shipml.yml",
    "gitlab": ".gitlab-ci.yml",
}
_TEMPLATES: dict[CiKind, str] = {"github": "github.yml.tmpl", "gitlab": "gitlab-ci.yml.tmpl"}
_PLACEHOLDER = re.compile(r"@@([A-Z_]+)(?::([^@]*))?@@")

_GITHUB_INSTALL = """\
      - name: install shipml
        env:
          PRESET_PYTHON: ${{ vars.SHIPML_PYTHON }}
        run: |
          if [ -n "$PRESET_PYTHON" ]; then
            python_bin=$PRESET_PYTHON
            echo "using $python_bin (the SHIPML_PYTHON variable); nothing to install"
          else
            python -m venv .venv
            .venv/bin/python -m pip install "$SHIPML_PIP_SPEC"
            python_bin=$PWD/.venv/bin/python
          fi
          echo "SHIPML_PYTHON=$python_bin" >> "$GITHUB_ENV"
          "$python_bin" -m shipml --help > /dev/null"""

_GITHUB_GATE = """\
        run: |
          code=0
          "$SHIPML_PYTHON" -m shipml {args} || code=$?
          case "$code" in
            0) ;;
            1) echo "::error title=gate failed::shipml {args}: a gate said no (exit 1)" ;;
            *) echo "::error title=shipml error::shipml {args}: exit $code, an error, not a gate" ;;
          esac
          exit "$code\""""

_GITHUB_SUMMARY = """\
      - name: summary of every gate
        if: ${{ always() }}
        run: |
          mkdir -p .shipml/reports
          "$SHIPML_PYTHON" -m shipml report --markdown > .shipml/reports/summary.md \\
            || echo "no shipml report: no state store to read" > .shipml/reports/summary.md
          cat .shipml/reports/summary.md >> "$GITHUB_STEP_SUMMARY\""""

_GITLAB_GATE = """\
    - |
      python_bin=${{SHIPML_PYTHON:-.venv/bin/python}}
      code=0
      "$python_bin" -m shipml {args} || code=$?
      mkdir -p .shipml/reports
      "$python_bin" -m shipml report --markdown > .shipml/reports/summary.md \\
        || echo "no shipml report: no state store to read" > .shipml/reports/summary.md
      cat .shipml/reports/summary.md
      case "$code" in
        0) ;;
        1) echo "shipml {args}: a gate said no (exit 1); see summary.md" ;;
        *) echo "shipml {args}: exit $code, an error (config, data, environment), not a gate" ;;
      esac
      [ "$code" -eq 0 ] || exit "$code\""""


def default_pip_spec() -> str:
    """The shipml that made the pipeline, pinned, with the pipeline extra."""
    return f"shipml[pipeline]=={__version__}"


def render(kind: CiKind, *, pip_spec: str | None = None, python_version: str | None = None) -> str:
    text = files("shipml.scaffold").joinpath("templates", _TEMPLATES[kind]).read_text()
    values = {
        "PIP_SPEC": pip_spec or default_pip_spec(),
        "PYTHON_VERSION": python_version or f"{sys.version_info.major}.{sys.version_info.minor}",
        "INSTALL": _GITHUB_INSTALL,
        "SUMMARY": _GITHUB_SUMMARY,
    }
    gate = _GITHUB_GATE if kind == "github" else _GITLAB_GATE

    def expand(match: re.Match[str]) -> str:
        name, arg = match.group(1), match.group(2)
        if name == "GATE":
            return gate.format(args=arg)
        return values[name]

    return _PLACEHOLDER.sub(expand, text)


def pipeline_files(
    kinds: list[CiKind], *, pip_spec: str | None = None, python_version: str | None = None
) -> dict[str, str]:
    """Relative path -> content of each pipeline file."""
    return {CI_FILES[k]: render(k, pip_spec=pip_spec, python_version=python_version) for k in kinds}
