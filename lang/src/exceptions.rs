//! The built-in exception classes (LANGUAGE.md, "Exceptions"): their names and hierarchy,
//! shared by the interpreter and the JIT's object model, and the text of an exception
//! (`str(e)`, `repr(e)`) from its `args`, as CPython gives it.
//!
//! Errors raised by the language itself carry an [`ErrorKind`]; when a handler catches one,
//! it becomes an instance of the class of the same name (`of_kind`) whose `args` hold the
//! message.

use crate::diag::ErrorKind;
use crate::value::{ClassObj, OpError, Value};
use std::sync::{Arc, Mutex};

/// Number of built-in exception classes.
pub const COUNT: usize = 20;

/// `(name, index of the base class)` of each built-in exception class, bases first;
/// `BaseException` (index 0) is its own base.
pub const CLASSES: [(&str, usize); COUNT] = [
    ("BaseException", 0),
    ("Exception", 0),
    ("ArithmeticError", 1),
    ("LookupError", 1),
    ("RuntimeError", 1),
    ("ValueError", 1),
    ("TypeError", 1),
    ("IndexError", 3),
    ("KeyError", 3),
    ("AttributeError", 1),
    ("ZeroDivisionError", 2),
    ("OverflowError", 2),
    ("RecursionError", 4),
    ("NotImplementedError", 4),
    ("MemoryError", 1),
    ("NameError", 1),
    ("SyntaxError", 1),
    ("StopIteration", 1),
    ("UnboundLocalError", 15),
    ("EOFError", 1),
];

/// The index of the built-in class named `name`.
pub fn index(name: &str) -> Option<usize> {
    CLASSES.iter().position(|(n, _)| *n == name)
}

/// The class of the errors of kind `kind`.
pub fn of_kind(kind: ErrorKind) -> usize {
    index(kind.name()).expect("every error kind has its class")
}

/// The interpreter's class objects of the built-in exceptions, by index.
pub fn new_classes() -> Vec<Arc<ClassObj>> {
    let mut out: Vec<Arc<ClassObj>> = Vec::with_capacity(COUNT);
    for (i, (name, base)) in CLASSES.iter().enumerate() {
        let base = (i != 0).then(|| out[*base].clone());
        out.push(Arc::new(ClassObj {
            name: name.to_string(),
            base,
            attrs: Mutex::new(Vec::new()),
            exc: true,
            builtin: true,
        }));
    }
    out
}

/// `str(e)` of an exception whose class defines no `__str__`: nothing for no argument,
/// `str` of the only one, else the text of the arguments as a tuple. A `KeyError` of one
/// argument shows its `repr`, as in CPython.
pub fn text(
    class: &str,
    args: &[Value],
    names: &dyn Fn(usize) -> String,
) -> Result<String, OpError> {
    match args {
        [] => Ok(String::new()),
        [a] if class == "KeyError" => a.repr(names),
        [a] => a.to_str(names),
        _ => tuple_text(args, names),
    }
}

/// `repr(e)` of an exception whose class defines no `__repr__`: `Name(arg, ...)`.
pub fn repr(
    class: &str,
    args: &[Value],
    names: &dyn Fn(usize) -> String,
) -> Result<String, OpError> {
    let mut out = format!("{class}(");
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&a.repr(names)?);
    }
    out.push(')');
    Ok(out)
}

/// The text of `args` as a Python tuple.
fn tuple_text(args: &[Value], names: &dyn Fn(usize) -> String) -> Result<String, OpError> {
    let mut out = String::from("(");
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&a.repr(names)?);
    }
    if args.len() == 1 {
        out.push(',');
    }
    out.push(')');
    Ok(out)
}

/// The `args` of an exception instance (its `args` attribute, a tuple; a program may have
/// set it to something else, which then counts as the only argument), or none.
pub fn args_of(inst: &crate::value::InstanceObj) -> Vec<Value> {
    let attrs = crate::value::lock(&inst.attrs);
    match attrs.iter().find(|(n, _)| n == "args").map(|(_, v)| v) {
        Some(Value::Tuple(t)) => t.items.clone(),
        Some(Value::List(l)) => l.snapshot(),
        Some(other) => vec![other.clone()],
        None => Vec::new(),
    }
}

/// The `args` of an error the language raised with `msg`: the message, except for a
/// `KeyError`, whose message is the `repr` of the missing key and whose argument is the
/// key (read back from its `repr` for ints and plain strs).
pub fn args_of_error(kind: ErrorKind, msg: &str) -> Vec<Value> {
    if kind == ErrorKind::KeyError {
        if let Ok(i) = msg.parse::<i64>() {
            return vec![Value::Int(i)];
        }
        for q in ['\'', '"'] {
            if let Some(inner) = msg.strip_prefix(q).and_then(|m| m.strip_suffix(q)) {
                if !inner.contains('\\') && !inner.contains(q) {
                    return vec![Value::str(inner)];
                }
            }
        }
    }
    if msg.is_empty() {
        Vec::new()
    } else {
        vec![Value::str(msg)]
    }
}

/// Index in [`CLASSES`] of `StopIteration`, which ends the iteration of an instance's
/// `__next__`.
pub const STOP_ITERATION: usize = 17;

/// Index in [`CLASSES`] of `IndexError`, which ends the iteration of an instance by its
/// `__getitem__` (the old sequence protocol).
pub const INDEX_ERROR: usize = 7;

/// Whether built-in class `class` is built-in class `of` or derives from it.
pub fn derives(mut class: usize, of: usize) -> bool {
    loop {
        if class == of {
            return true;
        }
        if class == 0 {
            return false;
        }
        class = CLASSES[class].1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_class_under_exception() {
        let classes = new_classes();
        for k in [
            ErrorKind::KeyError,
            ErrorKind::ZeroDivisionError,
            ErrorKind::RecursionError,
        ] {
            let mut c = classes[of_kind(k)].clone();
            let mut chain = vec![c.name.clone()];
            while let Some(b) = c.base.clone() {
                chain.push(b.name.clone());
                c = b;
            }
            assert_eq!(chain.last().unwrap(), "BaseException");
            assert!(chain.contains(&"Exception".to_string()), "{chain:?}");
        }
        for (i, (_, base)) in CLASSES.iter().enumerate().skip(1) {
            assert!(*base < i, "bases come first");
        }
    }

    #[test]
    fn text_follows_cpython() {
        let n = |_: usize| String::new();
        assert_eq!(text("ValueError", &[], &n).unwrap(), "");
        assert_eq!(text("ValueError", &[Value::str("x")], &n).unwrap(), "x");
        assert_eq!(text("KeyError", &[Value::str("x")], &n).unwrap(), "'x'");
        assert_eq!(
            text("ValueError", &[Value::str("a"), Value::Int(1)], &n).unwrap(),
            "('a', 1)"
        );
        assert_eq!(repr("E", &[Value::str("a")], &n).unwrap(), "E('a')");
    }
    #[test]
    fn stop_iteration_is_an_exception_and_derives_from_its_bases() {
        assert_eq!(CLASSES[STOP_ITERATION].0, "StopIteration");
        assert_eq!(CLASSES[INDEX_ERROR].0, "IndexError");
        assert!(derives(STOP_ITERATION, index("Exception").unwrap()));
        assert!(derives(
            index("KeyError").unwrap(),
            index("LookupError").unwrap()
        ));
        assert!(!derives(index("KeyError").unwrap(), STOP_ITERATION));
        assert!(!derives(0, 1));
    }
}
