"""Each CLI verb end to end, in-process through the real entry point, on a tiny model saved to disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dorag.cli.main import main
from dorag.core.io import read_jsonl

pytestmark = pytest.mark.integration


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_the_verbs(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for verb in ("generate", "models", "benchmarks", "quickstart"):
        assert verb in out


def test_version(capsys):
    from dorag import __version__

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith(f"dorag {__version__} (Python ")


@pytest.mark.parametrize("args, message", [
    (["benchmarks", "export"], "error: Missing argument 'name'. (see dorag benchmarks export --help)"),
    (["generate", "--temperatur", "1"], "error: No such option: --temperatur (Possible options: --temperature) (see dorag generate --help)"),
    (["nosuchverb"], "error: No such command 'nosuchverb'. (see dorag --help)"),
])
def test_usage_errors_are_one_line_with_exit_code_2(capsys, args, message):
    code, out, err = run(capsys, *args)
    assert (code, out, err) == (2, "", message + "\n")


def test_a_file_in_the_way_of_an_output_directory_is_one_line(capsys, tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    code, _, err = run(capsys, "benchmarks", "export", "humaneval", "--out", str(blocker / "he.jsonl"))
    assert (code, err) == (1, f"error: {blocker} exists and is not a directory; give another path or move that file\n")
    code, _, err = run(capsys, "benchmarks", "export", "humaneval", "--out", str(tmp_path))  # a directory for a file
    assert (code, err) == (1, f"error: {tmp_path} is a directory; give a file path\n")
    assert blocker.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no temp left


def test_an_empty_samples_file_is_an_error(capsys, tmp_path):
    empty = tmp_path / "samples.jsonl"
    empty.write_text("")
    code, _, err = run(capsys, "evaluate", str(empty))
    assert (code, err.splitlines()[-1]) == (1, f"error: {empty}: no samples in the file; write them with dorag generate")
    assert not (tmp_path / "samples_summary.json").exists()


def test_malformed_yaml_is_one_line_with_its_position(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  max_steps: 2\n    lr: 1\n")
    code, _, err = run(capsys, "train", "-c", str(bad))
    assert code == 1 and err == f"error: {bad}:3:7: invalid YAML: mapping values are not allowed here; fix the file and re-run\n"


def test_benchmarks_list_and_export(capsys, tmp_path):
    code, out, _ = run(capsys, "benchmarks", "list")
    assert code == 0 and "humaneval" in out
    dest = tmp_path / "he.jsonl"
    code, out, _ = run(capsys, "benchmarks", "export", "humaneval", "--out", str(dest))
    rows = read_jsonl(dest)
    assert code == 0 and len(rows) == 164 and all(r["canonical_solution"] for r in rows)


def test_models_list_shows_registered_models(capsys, tmp_path):
    code, out, _ = run(capsys, "models", "list", "--cache-dir", str(tmp_path))
    assert code == 0 and "qwen2.5-coder-0.5b-instruct" in out and "smollm2-135m-instruct" in out


def test_models_pull_unknown_name_is_one_line(capsys):
    code, _, err = run(capsys, "models", "pull", "gpt-17")
    assert code == 1 and err.count("\n") == 1 and "unknown model 'gpt-17'" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["foo.bar=1"], "unknown key foo"),
        (["--n", "0"], "generation.n: must be at least 1, got 0"),
        (["--model", "nosuch"], "unknown model 'nosuch'"),
        (["--problems", "MISSING"], "problems file not found"),
        (["--problems", "MALFORMED"], "bad.jsonl:2: malformed JSON line"),
        (["--benchmark", "nope"], "unknown benchmark 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(capsys, tmp_path, args, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "a", "prompt": "p", "test": "t", "entry_point": "f"}\n{"task_id": \n')
    args = [str(bad) if a == "MALFORMED" else str(tmp_path / "missing.jsonl") if a == "MISSING" else a for a in args]
    out_dir = tmp_path / "run"
    code, out, err = run(capsys, "generate", *args, "--run-dir", str(out_dir))
    assert code == 1
    assert message in err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not out_dir.exists()


def test_debug_flag_shows_the_traceback(capsys):
    code, _, err = run(capsys, "--debug", "generate", "--model", "nosuch")
    assert code == 1 and "Traceback" in err


def test_generate_end_to_end_on_a_tiny_local_model(capsys, tmp_path, tiny_model_dir, problems_file):
    run_dir = tmp_path / "run"
    args = ["generate", "--model", str(tiny_model_dir), "--problems", str(problems_file), "--max-new-tokens", "6",
            "--batch-size", "2", "--run-dir", str(run_dir)]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    samples = run_dir / "samples.jsonl"
    assert out.strip() == str(samples)
    assert [r["task_id"] for r in read_jsonl(samples)] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    # each sample records the length of the prompt it continued, as the model's tokenizer counts it
    assert all(r["prompt_tokens"] > 20 for r in read_jsonl(samples))
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "ok" and meta["stage"] == "generate" and "torch" in meta["packages"]
    assert "generation:" in (run_dir / "config.yaml").read_text()
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    assert metrics[-1]["n_samples"] == 3 and metrics[-1]["generated_tokens"] > 0
    # Re-running resumes: nothing left to generate, file unchanged.
    before = samples.read_bytes()
    code, _, err = run(capsys, *args)
    assert code == 0 and "0 samples for 0 tasks (3 already done)" in err
    assert samples.read_bytes() == before


def test_evaluate_scores_the_tasks_its_run_generated_for(capsys, tmp_path, tiny_model_dir):
    """`dorag evaluate` on a run's samples reads the run's benchmark and limit from its config.yaml: the tasks a
    --limit left out are not scored as failures."""
    run_dir = tmp_path / "run"
    code, _, err = run(capsys, "generate", "--model", str(tiny_model_dir), "--benchmark", "unseen-api", "--limit", "3",
                       "--max-new-tokens", "2", "--run-dir", str(run_dir), "sample=stratified")
    assert code == 0, err
    generated = [r["task_id"] for r in read_jsonl(run_dir / "samples.jsonl")]
    code, out, err = run(capsys, "evaluate", str(run_dir / "samples.jsonl"))
    assert code == 0, err
    assert "scoring unseen-api, 3 tasks (stratified)" in err and "had no sample" not in err
    summary = json.loads((run_dir / "samples_summary.json").read_text())
    assert summary["n_tasks"] == 3
    results = read_jsonl(run_dir / "samples_results.jsonl")
    assert sorted(r["task_id"] for r in results) == sorted(generated)
    # a flag still wins over the run's settings
    code, out, err = run(capsys, "evaluate", str(run_dir / "samples.jsonl"), "--benchmark", "unseen-api")
    assert code == 0 and json.loads((run_dir / "samples_summary.json").read_text())["n_tasks"] == 89
    assert "89 task(s)" not in err and "86 task(s) had no sample" in err
