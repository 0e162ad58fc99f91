"""The image-throughput benchmark: five passes over the same images, JSON and a results.md section."""

from __future__ import annotations

import json

from prodmatch.bench import throughput


def test_throughput_writes_json_and_a_markdown_section(tiny_data_dir, tmp_path):
    out_json, out_md = tmp_path / "tp.json", tmp_path / "results.md"
    out_md.write_text("<!-- bench:other -->\nkept\n<!-- /bench:other -->\n")
    args = ["--data-dir", str(tiny_data_dir / "synthetic"), "--image-size", "32", "--batch-size", "8"]
    args += ["--num-workers", "0", "--device", "cpu", "--limit", "24", "--repeats", "1"]
    assert throughput.main([*args, "--json", str(out_json), "--markdown", str(out_md)]) == 0
    result = json.loads(out_json.read_text())
    rates = result["img_per_s"]
    assert result["images"] == 24
    assert set(rates) == {"loader", "forward", "end_to_end", "store_write", "store_read"}
    assert result["end_to_end_over_forward"] == rates["end_to_end"] / rates["forward"]
    assert result["store_read_over_forward"] == rates["store_read"] / rates["forward"]
    text = out_md.read_text()
    assert "kept" in text and "<!-- bench:throughput-32-cpu -->" in text
    assert f"**{result['end_to_end_over_forward']:.2f}**" in text and "--limit 24" in text
    assert f"**{result['store_read_over_forward']:.2f}** from the pixel store" in text
