"""data prepare -> train -> generate --adapter -> adapters export/merge -> docstring, through the CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from dorag.cli.main import main
from dorag.core.io import read_jsonl
from dorag.data.docinsert import same_code

pytestmark = pytest.mark.integration


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def source_pkg(tmp_path_factory) -> Path:
    pkg = tmp_path_factory.mktemp("pkg")
    body = "\n\n".join(
        f'def scale_{i}(values, k={i}):\n    """Scale each value by {i} and return the list."""\n    return [v * k for v in values]\n'
        for i in range(12))
    (pkg / "lib.py").write_text(body)
    return pkg


def test_prepare_train_generate_export_merge(capsys, tmp_path, tiny_model_dir, source_pkg, problems_file):
    data = tmp_path / "code.jsonl"
    code, out, err = run(capsys, "data", "prepare", "--source", source_pkg, "--out", data, "eval_fraction=0.25")
    assert code == 0, err
    assert "contaminated:humaneval=0" in err and len(read_jsonl(data)) + len(read_jsonl(tmp_path / "code.eval.jsonl")) == 12

    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "--data", data, "--eval-data", tmp_path / "code.eval.jsonl", "--model",
                         tiny_model_dir, "--method", "dora", "--targets", "attention", "--r", "4", "--max-steps", "2",
                         "--batch-size", "2", "--output-dir", run_dir, "training.max_seq_len=1024")
    assert code == 0, err
    adapter = Path(out.strip().splitlines()[-1])
    assert adapter == run_dir / "adapter" and "eval loss" in err and "trainable" in err
    assert json.loads((adapter / "adapter_config.json").read_text())["use_dora"] is True

    samples = tmp_path / "s.jsonl"
    code, out, err = run(capsys, "generate", "--model", tiny_model_dir, "--adapter", adapter, "--problems",
                         problems_file, "--max-new-tokens", "4", "--out", samples)
    assert code == 0, err and len(read_jsonl(samples)) == 3

    code, out, err = run(capsys, "adapters", "export", adapter, "--out", tmp_path / "export",
                         "--base-model-id", "org/tiny")
    assert code == 0, err
    assert json.loads((tmp_path / "export" / "adapter_config.json").read_text())["base_model_name_or_path"] == "org/tiny"

    code, out, err = run(capsys, "adapters", "merge", adapter, "--out", tmp_path / "merged", "--model", tiny_model_dir)
    assert code == 0, err and (tmp_path / "merged" / "config.json").is_file()

    # a truncated copy of the weights is one line naming the file, for generate and merge alike
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(adapter, broken)
    weights = broken / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    for args in (["generate", "--model", tiny_model_dir, "--adapter", broken, "--problems", problems_file,
                  "--out", tmp_path / "s2.jsonl"],
                 ["adapters", "merge", broken, "--out", tmp_path / "merged2", "--model", tiny_model_dir]):
        code, _, err = run(capsys, *args)
        assert code == 1 and err.startswith(f"error: {weights}: corrupt or truncated adapter weights"), err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "merged2").exists() and not (tmp_path / "s2.jsonl").exists()


def test_train_bad_inputs_are_one_line_errors(capsys, tmp_path, tiny_model_dir):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    cases = [
        (["--r", "0"], "r: must be at least 1, got 0"),
        (["--targets", "wq"], "unknown module(s) wq; this model's linear modules are:"),
    ]
    for extra, message in cases:
        code, _, err = run(capsys, "train", "--data", data, "--model", tiny_model_dir, "--max-steps", "1",
                           "--output-dir", tmp_path / "r", *extra)
        assert code == 1 and message in err and err.count("\n") == 1, err
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    code, _, err = run(capsys, "train", "--data", empty, "--model", tiny_model_dir)
    assert code == 1 and "empty dataset" in err


def test_docstring_command_changes_only_docstrings(capsys, tmp_path, tiny_model_dir):
    f = tmp_path / "m.py"
    src = textwrap.dedent('''\
        def area(w, h):
            return w * h


        class Box:
            def volume(self, d):
                return d ** 3
        ''')
    f.write_text(src)
    code, out, err = run(capsys, "docstring", f, "--model", tiny_model_dir, "--max-new-tokens", "8")
    assert code == 0, err and out.startswith("--- a/") and f.read_text() == src
    code, out, err = run(capsys, "docstring", f, "--model", tiny_model_dir, "--max-new-tokens", "8", "--in-place")
    assert code == 0, err
    assert same_code(src, f.read_text())
