//! Front end of stmjit: lexer, parser, diagnostics, reference interpreter.
