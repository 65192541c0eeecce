"""The quickstart pipeline (grows with each stage dorag gains)."""
