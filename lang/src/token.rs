//! Tokens produced by the lexer. Every token carries the position of its first character so that
//! the parser, and every diagnostic after it, can point at the source.

use crate::ast::BinOp;
use crate::diag::Span;

/// One lexical token. Literal values are already decoded (escapes applied, underscores removed),
/// so the parser never looks at source text again.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// An identifier that is not a keyword.
    Name(String),
    /// An integer literal. Kept unsigned so that `-4611686018427387904` (the smallest int) can be
    /// folded by the parser although its magnitude is one past the largest positive int.
    Int(u64),
    /// An integer literal beyond `u64`: its decimal digits (a hexadecimal, octal or binary
    /// literal already converted), which the parser turns into an expression computing it.
    BigInt(String),
    /// A float literal.
    Float(f64),
    /// A string literal with escapes decoded.
    Str(String),
    /// An f-string: its literal parts (escapes decoded) and replacement fields.
    FString(Vec<FPart>),
    // Keywords.
    Def,
    Return,
    If,
    Elif,
    Else,
    While,
    For,
    In,
    Break,
    Continue,
    Pass,
    And,
    Or,
    Not,
    Is,
    Global,
    Class,
    With,
    Atomic,
    True,
    False,
    None,
    Del,
    // Brackets and punctuation.
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Colon,
    Dot,
    Semi,
    Assign,
    /// `+=`, `-=`, ...: the operator applied.
    AugAssign(BinOp),
    // Operators.
    Plus,
    Minus,
    Star,
    Slash,
    DoubleSlash,
    Percent,
    DoubleStar,
    LShift,
    RShift,
    Amp,
    Pipe,
    Caret,
    Tilde,
    Lt,
    Gt,
    Le,
    Ge,
    EqEq,
    NotEq,
    // Layout.
    /// End of a logical line.
    Newline,
    /// The next line is indented deeper than the current block.
    Indent,
    /// The block ends (one token per block closed).
    Dedent,
    /// End of input.
    Eof,
}

impl Tok {
    /// The keyword token for `word`, if it is one.
    pub fn keyword(word: &str) -> Option<Tok> {
        Some(match word {
            "def" => Tok::Def,
            "return" => Tok::Return,
            "if" => Tok::If,
            "elif" => Tok::Elif,
            "else" => Tok::Else,
            "while" => Tok::While,
            "for" => Tok::For,
            "in" => Tok::In,
            "break" => Tok::Break,
            "continue" => Tok::Continue,
            "pass" => Tok::Pass,
            "and" => Tok::And,
            "or" => Tok::Or,
            "not" => Tok::Not,
            "is" => Tok::Is,
            "global" => Tok::Global,
            "class" => Tok::Class,
            "with" => Tok::With,
            "atomic" => Tok::Atomic,
            "True" => Tok::True,
            "False" => Tok::False,
            "None" => Tok::None,
            "del" => Tok::Del,
            _ => return None,
        })
    }

    /// How the token is named in "expected ..." / "unexpected ..." messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Name(n) => format!("name '{n}'"),
            Tok::Int(_) | Tok::BigInt(_) | Tok::Float(_) => "number".to_string(),
            Tok::Str(_) | Tok::FString(_) => "string".to_string(),
            Tok::Newline => "end of line".to_string(),
            Tok::Indent => "indent".to_string(),
            Tok::Dedent => "dedent".to_string(),
            Tok::Eof => "end of file".to_string(),
            other => format!("'{}'", other.text()),
        }
    }

    /// Source text of a keyword or operator token (empty for the others).
    pub fn text(&self) -> &'static str {
        match self {
            Tok::Def => "def",
            Tok::Return => "return",
            Tok::If => "if",
            Tok::Elif => "elif",
            Tok::Else => "else",
            Tok::While => "while",
            Tok::For => "for",
            Tok::In => "in",
            Tok::Break => "break",
            Tok::Continue => "continue",
            Tok::Pass => "pass",
            Tok::And => "and",
            Tok::Or => "or",
            Tok::Not => "not",
            Tok::Is => "is",
            Tok::Global => "global",
            Tok::Class => "class",
            Tok::With => "with",
            Tok::Atomic => "atomic",
            Tok::True => "True",
            Tok::False => "False",
            Tok::None => "None",
            Tok::Del => "del",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Comma => ",",
            Tok::Colon => ":",
            Tok::Dot => ".",
            Tok::Semi => ";",
            Tok::Assign => "=",
            Tok::AugAssign(op) => op.aug_text(),
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::DoubleSlash => "//",
            Tok::Percent => "%",
            Tok::DoubleStar => "**",
            Tok::LShift => "<<",
            Tok::RShift => ">>",
            Tok::Amp => "&",
            Tok::Pipe => "|",
            Tok::Caret => "^",
            Tok::Tilde => "~",
            Tok::Lt => "<",
            Tok::Gt => ">",
            Tok::Le => "<=",
            Tok::Ge => ">=",
            Tok::EqEq => "==",
            Tok::NotEq => "!=",
            _ => "",
        }
    }
}

/// A piece of an f-string.
#[derive(Clone, Debug, PartialEq)]
pub enum FPart {
    /// Text.
    Lit(String),
    /// `{expr!conv:spec}`: the expression's source and where it starts, the conversion
    /// (`r`, `s`), the format spec (itself text and fields).
    Field {
        src: String,
        span: Span,
        conv: Option<char>,
        spec: Vec<FPart>,
    },
}

/// A token and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}
