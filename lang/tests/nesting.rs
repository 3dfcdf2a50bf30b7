//! Deep nesting and long lines: accepted far beyond realistic sizes, and beyond the limit a
//! clean "too deeply nested" SyntaxError, never a stack overflow.

use stmjit_lang::{parse, parser::MAX_NESTING, stack::on_big_stack};

/// Runs `f` on a thread of ordinary size (2 MiB, like test threads).
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .expect("no stack overflow")
}

#[test]
fn thousand_nested_parentheses_parse() {
    let src = format!("x = {}1{}\n", "(".repeat(1000), ")".repeat(1000));
    on_big_stack(|| parse(&src).expect("1000 nested parentheses"));
    let src = format!("x = {}1{}\n", "[".repeat(1000), "]".repeat(1000));
    on_big_stack(|| parse(&src).expect("1000 nested lists"));
    let src = format!("x = {}1\n", "-".repeat(1000));
    on_big_stack(|| parse(&src).expect("1000 unary minus"));
}

#[test]
fn two_thousand_nested_blocks_parse() {
    let mut src = String::new();
    for i in 0..2000 {
        src.push_str(&" ".repeat(i));
        src.push_str(if i % 2 == 0 {
            "if True:\n"
        } else {
            "while x:\n"
        });
    }
    src.push_str(&" ".repeat(2000));
    src.push_str("x = 1\n");
    on_big_stack(|| parse(&src).expect("2000 nested blocks"));
}

#[test]
fn long_lines_parse() {
    // A 1.2 MB line: a list display of 200 000 items.
    let items: Vec<String> = (0..200_000).map(|i| i.to_string()).collect();
    let src = format!("xs = [{}]\n", items.join(", "));
    on_big_stack(|| parse(&src).expect("long list"));
    // A chain of 10 000 additions (a 10 000-deep tree).
    let src = format!("x = {}\n", vec!["1"; 10_000].join(" + "));
    on_big_stack(|| parse(&src).expect("long sum"));
    // A 1 MB string literal.
    let src = format!("s = '{}'\n", "a".repeat(1 << 20));
    on_big_stack(|| parse(&src).expect("long string"));
}

#[test]
fn far_too_deep_is_a_clean_error() {
    let n = MAX_NESTING * 5;
    for src in [
        format!("x = {}1{}\n", "(".repeat(n), ")".repeat(n)),
        format!("x = {}1\n", "not ".repeat(n)),
        format!("x = {}\n", vec!["1"; n].join(" + ")),
        format!("x = {}1\n", "2 ** ".repeat(n)),
        format!("x = a{}\n", ".b".repeat(n)),
    ] {
        let err = on_big_stack(|| parse(&src).map(|_| ()).expect_err("too deep"));
        assert_eq!(err.message, stmjit_lang::parser::too_deep());
    }
}

#[test]
fn parse_needs_no_big_stack_from_its_caller() {
    let src = format!("x = {}1{}\n", "(".repeat(1000), ")".repeat(1000));
    let result = on_small_stack(move || parse(&src).map(|_| ()));
    assert!(result.is_ok(), "{result:?}");
    let n = MAX_NESTING * 2;
    let src = format!("x = {}1{}\n", "(".repeat(n), ")".repeat(n));
    let result = on_small_stack(move || parse(&src).map(|_| ()));
    assert_eq!(result.unwrap_err().message, stmjit_lang::parser::too_deep());
}

#[test]
fn stack_guard_stops_recursion_on_an_ordinary_thread() {
    // The guard alone (without the nesting counter) ends deep recursion cleanly.
    let src = format!("x = {}1{}\n", "(".repeat(15_000), ")".repeat(15_000));
    let result = on_small_stack(move || {
        let tokens = stmjit_lang::lexer::lex(&src).unwrap();
        stmjit_lang::parser::parse_tokens(tokens).map(|_| ())
    });
    assert_eq!(result.unwrap_err().message, "too deeply nested");
}
