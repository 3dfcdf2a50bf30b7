//! Small methods computed inline at their method-call sites, with the call as the way out.
//!
//! A method whose body is `return e`, `e` over its parameters, int / bool / None literals,
//! attributes of its parameters, `len(x)`, one int comparison (`<`, `==`, ...) and
//! `and` / `or`, only reads: `Task.runnable` of richards, `return len(self.queue) > 0`. At a
//! call `o.name()` whose arguments are simple, the site's cache probe gives the function the
//! call would run (`sites.rs`: the cache holds a class's method only while the class and its
//! instances leave it so); where that is such a method, its body is computed here on the
//! receiver and argument words: no frame, no locals spilled around a call, no class test of
//! `self` again (the probe left its class known), no result checked for an error.
//!
//! Every place where the inline code cannot go on jumps to the call itself, which runs the
//! method from its start: the depth or shadow-stack room where the call would raise a
//! RecursionError, an attribute that is no inline instance slot of a cached class (or
//! holds a raw float), no list for `len`, no ints to compare, an operand of `and` / `or`
//! that is no bool. Before such an exit the inline code has only read, under the read
//! markers a read needs (an extra marker is never wrong), and computed words of its own:
//! the call does everything as if it had not been tried. An attribute read shares its site
//! cache with the method's own code for that read (`CodeTables::attr_read_site`), whose
//! slow path fills it; where one class only has the name, both read it at the slot guessed
//! when compiling (`FnCompiler::guessed_slot`) instead, and other classes take the call.

use super::expr::{builtin_by_name, int_cc};
use super::FnCompiler;
use cranelift_codegen::ir::{condcodes::IntCC, types::I64, Block, InstBuilder, Value};
use stmjit_lang::ast::{Builtin, Expr, ExprKind, Function, Slot, StmtKind};
use stmjit_lang::diag::Span;
use stmjit_runtime::value::{FALSE, TRUE};
use stmjit_vm::{Accessed, UNBOUND};

/// Expression nodes an inlined method body may have at most (it is emitted at every call
/// site that may run it).
const MAX_NODES: usize = 24;

/// Methods one call site inlines at most (a polymorphic site tests each in turn).
const MAX_METHODS: usize = 2;

/// The parameter `e` names, if it is one (below `arity`).
fn param(e: &Expr, arity: usize) -> Option<usize> {
    match &e.kind {
        ExprKind::Name(n) => match n.slot {
            Slot::Local(l) if l < arity => Some(l),
            _ => None,
        },
        _ => None,
    }
}

/// The expression nodes of `e` if an inlined method body of `arity` parameters may compute
/// it, `None` if not.
fn expr_nodes(e: &Expr, arity: usize) -> Option<usize> {
    match &e.kind {
        // Ints of the tagged range (bigger literals are made otherwise).
        ExprKind::Int(i) => (i >> 62 == 0 || i >> 62 == -1).then_some(1),
        ExprKind::Bool(_) | ExprKind::None => Some(1),
        ExprKind::Name(_) => param(e, arity).map(|_| 1),
        ExprKind::Attr { obj, .. } => param(obj, arity).map(|_| 2),
        ExprKind::Call { func, args }
            if args.len() == 1 && builtin_by_name(func) == Some(Builtin::Len) =>
        {
            Some(expr_nodes(&args[0], arity)? + 1)
        }
        ExprKind::Compare { first, rest } if rest.len() == 1 && int_cc(rest[0].0).is_some() => {
            Some(expr_nodes(first, arity)? + expr_nodes(&rest[0].1, arity)? + 1)
        }
        ExprKind::And(a, b) | ExprKind::Or(a, b) => {
            Some(expr_nodes(a, arity)? + expr_nodes(b, arity)? + 1)
        }
        _ => None,
    }
}

/// Whether the word of `e`, in an inlined method body that computed it, is always a bool:
/// an int comparison (its inline way gives `True` or `False`; any other operands go to the
/// call), a bool literal, or `and` / `or` of such (whose result is one of its operands).
fn always_bool(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Compare { .. } | ExprKind::Bool(_) => true,
        ExprKind::And(a, b) | ExprKind::Or(a, b) => always_bool(a) && always_bool(b),
        _ => false,
    }
}

/// The expression `return`ed by inlinable method `f`.
fn body_expr(f: &Function) -> &Expr {
    let StmtKind::Return(Some(e)) = &f.body[0].kind else {
        unreachable!("inlinable_method: one return")
    };
    e
}

/// The expression nodes of method `f`'s body if a call of it can be computed inline (see
/// the module docs), `None` if not.
pub(crate) fn inlinable_method(f: &Function) -> Option<usize> {
    if !f.is_plain() || !f.cells.is_empty() || f.arity == 0 {
        return None;
    }
    let [only] = &f.body[..] else {
        return None;
    };
    let StmtKind::Return(Some(e)) = &only.kind else {
        return None;
    };
    expr_nodes(e, f.arity).filter(|&n| n <= MAX_NODES)
}

impl FnCompiler<'_, '_> {
    /// The functions (id, nodes) that a call `o.name(...)` with `nargs` arguments may run
    /// and that can be computed inline there: at most [`MAX_METHODS`], none in compact code.
    pub(crate) fn inline_methods_for(&self, name: &str, nargs: usize) -> Vec<(usize, usize)> {
        if self.compact {
            return Vec::new();
        }
        let program = self.sh.program;
        (program.functions.iter().enumerate())
            .filter(|(_, f)| f.name == name && f.arity == nargs + 1)
            .filter_map(|(fid, f)| inlinable_method(f).map(|n| (fid, n)))
            .take(MAX_METHODS)
            .collect()
    }

    /// Whether one of `methods` ([`Self::inline_methods_for`]) computes a result that is always
    /// a bool: then the truth test of a call site that may run it can branch in the inline
    /// body, on the comparison itself ([`Self::inline_methods`] with branch targets).
    pub(crate) fn bool_methods(&self, methods: &[(usize, usize)]) -> bool {
        let program = self.sh.program;
        methods
            .iter()
            .any(|&(m, _)| always_bool(body_expr(&program.functions[m])))
    }

    /// At a method-call site whose cache probe gave function id `fid` (a word), computes the
    /// call inline when `fid` is one of `methods` ([`Self::inline_methods_for`]), on the
    /// receiver and argument words `args`, and jumps to `done` with the result; continues
    /// in `call` (the current block on return: not switched to) for any other function and
    /// wherever an inline body cannot go on.
    ///
    /// With `branch` = `(then, els)` (the call is the condition of a branch), a body whose
    /// result is always a bool ([`always_bool`]) branches there instead of making the bool
    /// and joining the call's result at `done` to be tested again: an int comparison
    /// branches on the machine compare. Its ways out to `call` are those of the word.
    pub(crate) fn inline_methods(
        &mut self,
        fid: Value,
        methods: &[(usize, usize)],
        args: &[Value],
        call: Block,
        done: Block,
        branch: Option<(Block, Block)>,
    ) {
        let program = self.sh.program;
        for &(m, nodes) in methods {
            let body = self.b.create_block();
            let next = self.b.create_block();
            let here = self.b.current_block();
            let region = self.region.clone();
            let is = self.b.ins().icmp_imm(IntCC::Equal, fid, m as i64);
            self.b.ins().brif(is, body, &[], next, &[]);
            // Both ways only compared a word: the region goes on in each.
            self.carry_region(&region, here, body);
            self.b.switch_to_block(body);
            let f = &program.functions[m];
            self.inline_room(f, nodes, call);
            let e = body_expr(f);
            match branch {
                Some((then, els)) if always_bool(e) => {
                    let c = self.method_cond(e, args, call);
                    // Both edges record the region, as `branch_cond`'s do.
                    self.brif_keeping(c, then, els);
                }
                _ => {
                    let r = self.method_expr(e, args, call);
                    // `done` keeps the region (marks across calls): this edge records
                    // what it has.
                    self.jump_keeping(done, &[r.into()]);
                }
            }
            self.carry_region(&region, here, next);
            self.b.switch_to_block(next);
        }
        self.b.ins().jump(call, &[]);
    }

    /// The word of `e` in an inlined method body whose parameters hold `env`.
    fn method_expr(&mut self, e: &Expr, env: &[Value], call: Block) -> Value {
        match &e.kind {
            ExprKind::Int(_) | ExprKind::Bool(_) | ExprKind::None => {
                let w = self.const_word(e).expect("inlinable_method: a literal");
                self.b.ins().iconst(I64, w as i64)
            }
            ExprKind::Name(_) => env[param(e, env.len()).expect("inlinable_method")],
            ExprKind::Attr { obj, name } => {
                let o = self.method_expr(obj, env, call);
                self.method_attr(o, name, e.span, call)
            }
            ExprKind::Call { args, .. } => {
                let v = self.method_expr(&args[0], env, call);
                self.list_len_or(v, e.span, call)
            }
            ExprKind::Compare { first, rest } => {
                let x = self.method_expr(first, env, call);
                let y = self.method_expr(&rest[0].1, env, call);
                let cc = int_cc(rest[0].0).expect("inlinable_method: an int comparison");
                self.both_ints(x, y, call);
                let c = self.b.ins().icmp(cc, x, y);
                let t = self.b.ins().iconst(I64, TRUE as i64);
                let f = self.b.ins().iconst(I64, FALSE as i64);
                self.b.ins().select(c, t, f)
            }
            ExprKind::And(a, b) => self.method_bool_op(a, b, false, env, call),
            ExprKind::Or(a, b) => self.method_bool_op(a, b, true, env, call),
            _ => unreachable!("inlinable_method: no other expression"),
        }
    }

    /// The truth (an `i8`) of `e` in an inlined body, for a body that is [`always_bool`]: an
    /// int comparison's own compare (no bool made), else the word compared with `True`.
    fn method_cond(&mut self, e: &Expr, env: &[Value], call: Block) -> Value {
        match &e.kind {
            ExprKind::Compare { first, rest } => {
                let x = self.method_expr(first, env, call);
                let y = self.method_expr(&rest[0].1, env, call);
                let cc = int_cc(rest[0].0).expect("inlinable_method: an int comparison");
                self.both_ints(x, y, call);
                self.b.ins().icmp(cc, x, y)
            }
            _ => {
                let r = self.method_expr(e, env, call);
                self.b.ins().icmp_imm(IntCC::Equal, r, TRUE as i64)
            }
        }
    }

    /// `a or b` (`or_`) or `a and b` for a bool `a`: `a` where it decides, else `b`; any
    /// other `a` goes to `call`.
    fn method_bool_op(
        &mut self,
        a: &Expr,
        b: &Expr,
        or_: bool,
        env: &[Value],
        call: Block,
    ) -> Value {
        let x = self.method_expr(a, env, call);
        let (decides, goes_on) = if or_ { (TRUE, FALSE) } else { (FALSE, TRUE) };
        let join = self.b.create_block();
        self.b.append_block_param(join, I64);
        let other = self.b.create_block();
        let is = self.b.ins().icmp_imm(IntCC::Equal, x, decides as i64);
        self.b.ins().brif(is, join, &[x.into()], other, &[]);
        self.follow(other);
        let on = self.b.ins().icmp_imm(IntCC::Equal, x, goes_on as i64);
        self.only_if(on, call);
        let y = self.method_expr(b, env, call);
        self.b.ins().jump(join, &[y.into()]);
        // Two ways in: the region starts again there.
        self.b.switch_to_block(join);
        self.b.block_params(join)[0]
    }

    /// `o.name` in an inlined body: an inline instance slot through the read's shared site
    /// cache, under `o`'s read marker; anything else (no instance, a class not cached, an
    /// unbound or raw-float slot) goes to `call`.
    fn method_attr(&mut self, o: Value, name: &str, span: Span, call: Block) -> Value {
        let nid = self.sh.names.intern(name);
        let outer = self.accesses.replace(Accessed::Attr(nid));
        let (addr, idx) = match self.guessed_slot(o, nid, call) {
            // One class has the name: the method's own code reads it at that slot and
            // never fills the site cache, so a probe of the cache would always miss here.
            Some((is_class, s)) => {
                self.only_if(is_class, call);
                self.guessed_slot_addr(o, s, call, span)
            }
            None => {
                let cache = self.attr_read_site(nid, span);
                self.attr_slot(o, cache, call, span)
            }
        };
        if self.may_be_raw(name) {
            let is_float = self.slot_is_float(o, idx);
            self.unless(is_float, call);
        }
        let a = self.seg_addr(addr);
        let v = self.b.ins().load(I64, super::mf(), a, 0);
        let absent = self.b.ins().icmp_imm(IntCC::Equal, v, UNBOUND as i64);
        self.unless(absent, call);
        self.accesses = outer;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(src: &str) -> Option<usize> {
        let p = stmjit_lang::parse(src).unwrap();
        let f = p.functions.iter().find(|f| f.name == "m").unwrap();
        inlinable_method(f)
    }

    #[test]
    fn reading_one_liners_are_inlined() {
        assert_eq!(
            method("class C:\n    def m(self):\n        return len(self.q) > 0\n"),
            Some(5)
        );
        assert_eq!(
            method(
                "class C:\n    def m(self, k):\n        return self.a > k or (self.b == 1 and len(self.q) > 0)\n"
            ),
            Some(15)
        );
        assert_eq!(
            method("class C:\n    def m(self):\n        return self.x\n"),
            Some(2)
        );
    }

    #[test]
    fn anything_else_is_called() {
        // Writes, calls, globals, other operators and comparisons, more statements, defaults.
        for src in [
            "class C:\n    def m(self):\n        self.x = 1\n        return 1\n",
            "class C:\n    def m(self):\n        return self.f()\n",
            "class C:\n    def m(self):\n        return G\nG = 1\n",
            "class C:\n    def m(self):\n        return self.x + 1\n",
            "class C:\n    def m(self):\n        return self.x in self.q\n",
            "class C:\n    def m(self):\n        return 0 < self.x < 9\n",
            "class C:\n    def m(self):\n        return self.q[0]\n",
            "class C:\n    def m(self):\n        return self.a.b\n",
            "class C:\n    def m(self, k=1):\n        return k\n",
            "class C:\n    def m(self):\n        pass\n",
            "def m():\n    return 1\n",
        ] {
            assert_eq!(method(src), None, "{src}");
        }
    }
}
