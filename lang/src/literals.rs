//! The literals of a program: what its compiled code refers to as objects, which a
//! compiler allocates before the code runs (LANGUAGE.md values are objects, and code embeds
//! their references): str, float and big int literals, and the names the program uses as
//! attributes, methods and class members.

use crate::ast::*;

/// The literals of a program, in program order (the module body, then each function),
/// repetitions included.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Literals {
    /// Str literals.
    pub strs: Vec<String>,
    /// Float literals.
    pub floats: Vec<f64>,
    /// Names used as attributes, methods, class members and keyword arguments.
    pub names: Vec<String>,
    /// Int literals beyond the tagged ints, negated or not
    /// ([`crate::parser::big_literal_value`]).
    pub bigs: Vec<num_bigint::BigInt>,
}

/// The literals of `program`.
pub fn literals(program: &Program) -> Literals {
    let mut l = Literals::default();
    l.stmts(&program.body);
    for f in program.functions.iter() {
        f.defaults.iter().for_each(|d| l.expr(d));
        l.stmts(&f.body);
    }
    l
}

impl Literals {
    /// Appends the literals of `stmts`, in order.
    fn stmts(&mut self, stmts: &[Stmt]) {
        for s in stmts {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Expr(e) => self.expr(e),
            StmtKind::Assign { targets, value } => {
                targets.iter().for_each(|t| self.target(t));
                self.expr(value)
            }
            StmtKind::AugAssign { target, value, .. } => {
                self.target(target);
                self.expr(value)
            }
            StmtKind::If { cond, body, orelse } => {
                self.expr(cond);
                self.stmts(body);
                self.stmts(orelse)
            }
            StmtKind::While { cond, body, orelse } => {
                self.expr(cond);
                self.stmts(body);
                self.stmts(orelse)
            }
            StmtKind::For {
                iter, body, orelse, ..
            } => {
                self.expr(iter);
                self.stmts(body);
                self.stmts(orelse)
            }
            StmtKind::Return(Some(e)) => self.expr(e),
            StmtKind::Del(t) => self.target(t),
            StmtKind::ClassDef {
                base,
                methods,
                attrs,
                ..
            } => {
                base.iter().for_each(|b| self.expr(b));
                methods.iter().for_each(|(n, _)| self.names.push(n.clone()));
                for (n, e) in attrs {
                    self.names.push(n.clone());
                    self.expr(e)
                }
            }
            StmtKind::With { kind, body } => {
                if let WithKind::Lock(e) = kind {
                    self.expr(e)
                }
                self.stmts(body)
            }
            StmtKind::Try {
                body,
                handlers,
                orelse,
                finalbody,
                ..
            } => {
                self.stmts(body);
                for h in handlers {
                    h.classes.iter().for_each(|c| self.expr(c));
                    self.stmts(&h.body);
                }
                self.stmts(orelse);
                self.stmts(finalbody)
            }
            StmtKind::Raise { exc: Some(e), .. } => self.expr(e),
            _ => {}
        }
    }

    fn target(&mut self, t: &Target) {
        match t {
            Target::Name(_) => {}
            Target::Index { obj, index } => {
                self.expr(obj);
                self.expr(index)
            }
            Target::Slice { obj, lo, hi } => {
                self.expr(obj);
                lo.iter().for_each(|x| self.expr(x));
                hi.iter().for_each(|x| self.expr(x))
            }
            Target::Attr { obj, name } => {
                self.names.push(name.to_string());
                self.expr(obj)
            }
            Target::Tuple(items, _) => items.iter().for_each(|t| self.target(t)),
        }
    }

    fn expr(&mut self, e: &Expr) {
        if matches!(
            e.kind,
            ExprKind::Binary(BinOp::Add, ..) | ExprKind::Unary(..)
        ) {
            if let Some(v) = crate::parser::big_literal_value(e) {
                self.bigs.push(v);
                return;
            }
        }
        match &e.kind {
            ExprKind::Str(s) => self.strs.push(s.to_string()),
            ExprKind::Float(f) => self.floats.push(*f),
            ExprKind::List(items) | ExprKind::Tuple(items) | ExprKind::Set(items) => {
                items.iter().for_each(|x| self.expr(x))
            }
            ExprKind::Dict(items) => items.iter().for_each(|(k, v)| {
                self.expr(k);
                self.expr(v)
            }),
            ExprKind::Unary(_, a) | ExprKind::Not(a) => self.expr(a),
            ExprKind::Binary(_, a, b) | ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                self.expr(a);
                self.expr(b)
            }
            ExprKind::Compare { first, rest } => {
                self.expr(first);
                rest.iter().for_each(|(_, x)| self.expr(x))
            }
            ExprKind::IfElse { cond, then, orelse } => {
                self.expr(cond);
                self.expr(then);
                self.expr(orelse)
            }
            ExprKind::Call { func, args } => {
                self.expr(func);
                args.iter().for_each(|x| self.expr(x))
            }
            ExprKind::CallEx { func, args } => {
                self.expr(func);
                for a in args {
                    if let ArgKind::Kw(k) = &a.kind {
                        self.names.push(k.clone());
                    }
                    self.expr(&a.value)
                }
            }
            ExprKind::MethodCall { obj, name, args } => {
                self.names.push(name.to_string());
                self.expr(obj);
                args.iter().for_each(|x| self.expr(x))
            }
            ExprKind::Attr { obj, name } => {
                self.names.push(name.to_string());
                self.expr(obj)
            }
            ExprKind::Index { obj, index } => {
                self.expr(obj);
                self.expr(index)
            }
            ExprKind::Slice { obj, lo, hi } => {
                self.expr(obj);
                lo.iter().for_each(|x| self.expr(x));
                hi.iter().for_each(|x| self.expr(x))
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_in_program_order_body_first() {
        let p = crate::parse(
            "def f(o):\n    return o.b + 2.5\nx = \"s\"\ny = x.upper()\nclass C:\n    k = 1.5\n",
        )
        .unwrap();
        let l = literals(&p);
        assert_eq!(l.strs, vec!["s".to_string()]);
        assert_eq!(l.floats, vec![1.5, 2.5]);
        assert_eq!(
            l.names,
            vec!["upper".to_string(), "k".to_string(), "b".to_string()]
        );
    }

    /// Int literals beyond the tagged ints (below and beyond `u64`, negated, of many
    /// leaves) are collected with their values; tagged ones, and expressions of the same
    /// operators written by hand whose value is no literal's (a scale of more digits than
    /// the leaves below it), are not.
    #[test]
    fn big_int_literals_are_collected_by_value() {
        let lits = [
            "4611686018427387904",
            "18446744073709551615",
            "18446744073709551616",
            "-123456789012345678901234567890123456789012345678901234567890",
        ];
        let src = format!(
            "x = [{}]\ny = 4611686018427387903\nz = 1 * 10 ** 36 + 5\nw = 5 * 10 ** 18 + 5\n",
            lits.join(", ")
        );
        let l = literals(&crate::parse(&src).unwrap());
        let want: Vec<num_bigint::BigInt> = lits
            .iter()
            .map(|s| s.parse().unwrap())
            .chain(["5000000000000000005".parse().unwrap()])
            .collect();
        assert_eq!(l.bigs, want);
    }
}
