// LinearAlgebra module: see docs/ARCHITECTURE.md
