"""Stages that wire the lower layers together: generation runs, the ablation grid, reports, the gate."""
