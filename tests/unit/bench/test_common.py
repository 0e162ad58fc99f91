"""Results-file sections: each benchmark rewrites only its own."""

from __future__ import annotations

from prodmatch.bench.common import write_section


def test_write_section_adds_replaces_and_keeps_others(tmp_path):
    path = tmp_path / "results.md"
    write_section(path, "search", "# table A\n")
    write_section(path, "scale-100", "## scale 100, first\n")
    write_section(path, "search", "# table A, again\n")
    write_section(path, "scale-100", "## scale 100, second\n")
    text = path.read_text()
    assert text.index("table A, again") < text.index("scale 100, second")
    assert "first" not in text and "# table A\n" not in text
    assert text.count("<!-- bench:search -->") == 1 and text.count("<!-- /bench:scale-100 -->") == 1


def test_write_section_keeps_text_outside_sections(tmp_path):
    path = tmp_path / "results.md"
    path.write_text("intro by hand\n")
    write_section(path, "x", "body")
    assert path.read_text().startswith("intro by hand\n\n<!-- bench:x -->\nbody\n")
