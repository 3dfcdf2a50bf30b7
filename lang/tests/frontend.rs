//! The shape of the resolved AST that the JIT consumes: slots, spans, functions, methods.

use stmjit_lang::ast::*;
use stmjit_lang::{parse, Span};

fn program(src: &str) -> Program {
    parse(src).unwrap_or_else(|d| panic!("{d:?}"))
}

fn names_in_expr(e: &Expr, out: &mut Vec<(String, Slot, Span)>) {
    match &e.kind {
        ExprKind::Name(n) => out.push((n.name.to_string(), n.slot, n.span)),
        ExprKind::Binary(_, a, b) => {
            names_in_expr(a, out);
            names_in_expr(b, out);
        }
        ExprKind::Call { func, args } => {
            names_in_expr(func, out);
            args.iter().for_each(|a| names_in_expr(a, out));
        }
        _ => {}
    }
}

fn names(stmts: &[Stmt]) -> Vec<(String, Slot, Span)> {
    let mut out = Vec::new();
    for s in stmts {
        match &s.kind {
            StmtKind::Expr(e) | StmtKind::Return(Some(e)) => names_in_expr(e, &mut out),
            StmtKind::Assign { targets, value } => {
                names_in_expr(value, &mut out);
                for t in targets {
                    if let Target::Name(n) = t {
                        out.push((n.name.to_string(), n.slot, n.span));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn python_scoping_rules() {
    let p = program(
        "g = 1\n\
         def f(a, b):\n    c = a + g\n    global h\n    h = len(c)\n    return b + c + k + print\n\
         def print2():\n    pass\n\
         len2 = 0\n",
    );
    let f = &p.functions[0];
    assert_eq!(f.name, "f");
    assert_eq!(f.arity, 2);
    assert_eq!(f.locals, vec!["a", "b", "c"]);
    let gid = |name: &str| p.globals.iter().position(|g| g == name).unwrap();
    let found = names(&f.body);
    let slot = |name: &str| found.iter().find(|(n, ..)| n == name).unwrap().1;
    assert_eq!(slot("a"), Slot::Local(0));
    assert_eq!(slot("b"), Slot::Local(1));
    assert_eq!(slot("c"), Slot::Local(2));
    assert_eq!(slot("g"), Slot::Global(gid("g")));
    assert_eq!(slot("h"), Slot::Global(gid("h")));
    assert_eq!(slot("k"), Slot::Global(gid("k"))); // undefined: NameError when run
    assert_eq!(slot("len"), Slot::Builtin(Builtin::Len));
    assert_eq!(slot("print"), Slot::Builtin(Builtin::Print));
}

#[test]
fn a_builtin_name_bound_anywhere_is_a_global() {
    let p = program("def f():\n    return len('x')\nlen = 3\n");
    let found = names(&p.functions[0].body);
    let len = p.globals.iter().position(|g| g == "len").unwrap();
    assert_eq!(found[0].1, Slot::Global(len));
}

#[test]
fn spans_point_at_first_tokens() {
    let p = program("x = 1\nif x:\n    y = x +  zed\n");
    assert_eq!(p.body[0].span, Span::new(1, 1));
    assert_eq!(p.body[1].span, Span::new(2, 1));
    let StmtKind::If { body, cond, .. } = &p.body[1].kind else {
        panic!()
    };
    assert_eq!(cond.span, Span::new(2, 4));
    let found = names(body);
    assert_eq!(found[0].2, Span::new(3, 9));
    assert_eq!(found[1].2, Span::new(3, 14));
    let StmtKind::Assign { value, .. } = &body[0].kind else {
        panic!()
    };
    assert_eq!(value.span, Span::new(3, 9));
}

#[test]
fn methods_are_numbered_functions_with_qualified_names() {
    let p = program("class A(B):\n    k = 1\n    def m(self, x):\n        return x\n");
    let StmtKind::ClassDef {
        name,
        methods,
        attrs,
        base,
        ..
    } = &p.body[0].kind
    else {
        panic!()
    };
    assert_eq!(name, "A");
    assert!(base.is_some());
    assert_eq!(attrs.len(), 1);
    assert_eq!(methods[0].0, "m");
    let m = &p.functions[methods[0].1];
    assert_eq!(m.qualname, "A.m");
    assert_eq!(m.locals, vec!["self", "x"]);
}

#[test]
fn operators_and_calls() {
    let p = program("o.m(1)[2:]\nf(-4611686018427387904)\nx = 0 < y <= 3\n");
    let StmtKind::Expr(e) = &p.body[0].kind else {
        panic!()
    };
    let ExprKind::Slice { obj, lo, hi } = &e.kind else {
        panic!()
    };
    assert!(matches!(obj.kind, ExprKind::MethodCall { .. }));
    assert!(lo.is_some() && hi.is_none());
    let StmtKind::Expr(e) = &p.body[1].kind else {
        panic!()
    };
    let ExprKind::Call { args, .. } = &e.kind else {
        panic!()
    };
    assert!(matches!(args[0].kind, ExprKind::Int(i) if i == -(1 << 62)));
    let StmtKind::Assign { value, .. } = &p.body[2].kind else {
        panic!()
    };
    let ExprKind::Compare { rest, .. } = &value.kind else {
        panic!()
    };
    assert_eq!(rest.len(), 2);
}

#[test]
fn structural_errors() {
    let err = |src: &str| parse(src).map(|_| ()).unwrap_err();
    assert_eq!(
        err("def f(a):\n    global a\n").message,
        "name 'a' is parameter and global"
    );
    assert!(parse("def f():\n    if x:\n        def g():\n            pass\n").is_ok());
    assert_eq!(
        err("def f():\n    if x:\n        nonlocal y\n").span,
        Span::new(3, 9)
    );
    assert_eq!(
        err("def f(a):\n    def g():\n        nonlocal a, b\n").message,
        "no binding for nonlocal 'b' found"
    );
    assert!(parse("while x:\n    def g():\n        pass\n").is_ok());
    assert_eq!(
        err("def f():\n    class C:\n        pass\n").span,
        Span::new(2, 5)
    );
    assert_eq!(err("continue\n").message, "'continue' outside loop");
    assert_eq!(
        err("def f():\n    for i in x:\n        pass\n    break\n").span,
        Span::new(4, 5)
    );
    assert_eq!(
        err("class A:\n    return 1\n").message,
        "'return' outside function"
    );
    assert_eq!(err("if x:\npass\n").message, "expected an indented block");
    assert_eq!(
        err("del x\n").message,
        "del supports only d[k] and xs[i] targets"
    );
    assert_eq!(err("f() = 1\n").message, "cannot assign to function call");
    assert_eq!(err("x = (1\n").message, "'(' was never closed");
    assert_eq!(err("x = 0777\n").span, Span::new(1, 5));
}
