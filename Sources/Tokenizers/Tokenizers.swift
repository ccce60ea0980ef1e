// Tokenizers module: see docs/ARCHITECTURE.md
