"""`dorag gate`."""

from __future__ import annotations

from typing import List, Optional

import typer

from dorag.cli.common import build_config, echo


def gate(
    metrics: Optional[str] = typer.Argument(None, help="the new metrics JSON"),
    baseline: Optional[str] = typer.Option(None, help="the baseline metrics JSON"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML with the rules (see configs/gate.yaml)"),
    promote: bool = typer.Option(False, "--promote", help="write the metrics as the new baseline if the gate passes"),
    overrides: Optional[List[str]] = typer.Option(None, "--set", help="dotted overrides, e.g. rules.pass@1.value.tolerance=0.05"),
) -> None:
    """Compare metrics with a baseline; exit 3 on a regression beyond tolerance (blocks publishing)."""
    from dorag.experiments.gate import GateConfig, run_gate, table

    cfg = build_config(GateConfig, config, {"metrics": metrics, "baseline": baseline, "promote": promote or None},
                       overrides or [])
    rows, ok, promoted = run_gate(cfg)
    print(table(rows))
    print("gate: PASS" + (f"; baseline promoted to {cfg.baseline}" if promoted else "") if ok else
          "gate: FAIL (regression beyond tolerance)" + ("; baseline left unchanged" if cfg.promote else ""))
    if not ok:
        raise typer.Exit(3)
    if cfg.promote and not promoted:
        echo("nothing promoted")
