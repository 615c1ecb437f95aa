"""CITATION.cff is valid CFF 1.2.0 and cites the GalacticFlow paper as the preferred citation."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CFF = ROOT / "CITATION.cff"


def _citation_class():
    if importlib.util.find_spec("cffconvert") is None:
        if os.environ.get("CI"):
            pytest.fail('CI is set but cffconvert is not installed: pip install -e ".[test]"')
        pytest.skip("cffconvert not installed")
    from cffconvert.citation import Citation

    return Citation


def test_citation_validates_against_the_cff_schema():
    Citation = _citation_class()
    citation = Citation(CFF.read_text(), src=None)
    assert citation.cffversion == "1.2.0"
    citation.validate()  # jsonschema against the CFF 1.2.0 schema; raises when invalid


def test_the_validator_rejects_a_broken_file():
    import jsonschema

    Citation = _citation_class()
    text = CFF.read_text().replace("authors:\n  - name:", "writers:\n  - name:", 1)
    assert "writers:" in text
    with pytest.raises(jsonschema.exceptions.ValidationError):
        Citation(text, src=None).validate()


def test_required_keys_and_the_preferred_citation():
    Citation = _citation_class()
    cff = Citation(CFF.read_text(), src=None).cffobj
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors", "type", "version", "license"):
        assert cff.get(key), key
    assert cff["type"] == "software"
    import astroflow_gal

    assert str(cff["version"]) == astroflow_gal.__version__
    paper = cff["preferred-citation"]
    assert paper["type"] == "article"
    assert "GalacticFlow" in paper["title"]
    assert [a["family-names"] for a in paper["authors"]] == ["Wolf", "Buck"]
    assert paper["year"] == 2023
    ids = [i["value"] for i in paper.get("identifiers", [])] + [paper.get("url", "")]
    assert any("2312.06017" in str(v) for v in ids)
