// NN module: see docs/ARCHITECTURE.md
