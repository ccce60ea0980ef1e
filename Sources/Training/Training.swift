// Training module: see docs/ARCHITECTURE.md
