// Autograd module: see docs/ARCHITECTURE.md
