//! Cranelift code generation for stmjit.
