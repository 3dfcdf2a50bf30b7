//! The STM runtime of stmjit (see `shared/DESIGN.md`).
