// PEFT module: see docs/ARCHITECTURE.md
