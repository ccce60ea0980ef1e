// Formats module: see docs/ARCHITECTURE.md
