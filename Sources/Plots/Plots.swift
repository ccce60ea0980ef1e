// Plots module: see docs/ARCHITECTURE.md
