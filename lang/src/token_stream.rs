//! The tokens the parser reads, pulled from the lexer a line at a time as it goes, so that
//! the tokens of a whole source never exist at once (issue 20: they were about 20 bytes per
//! byte of source, beside the syntax tree being made of them).

use crate::diag::Diagnostic;
use crate::lexer::Lexer;
use crate::token::{Tok, Token};
use std::collections::VecDeque;

/// How many tokens the parser may look at: the next one and the one after it.
const LOOKAHEAD: usize = 2;

/// The tokens from the parser's position on: at least [`LOOKAHEAD`] of them, or all that
/// are left, the last one always `Eof`.
pub struct TokenStream<'a> {
    /// Lexes the rest of the source; `None` once it has made `Eof` or failed.
    lexer: Option<Lexer<'a>>,
    ahead: VecDeque<Token>,
    /// The lexer's error, once it met one: the stream then ends with `Eof` there, and the
    /// parse reports this error ([`TokenStream::lex_error`]).
    error: Option<Diagnostic>,
}

impl<'a> TokenStream<'a> {
    /// The tokens of `source`, lexed as they are needed.
    pub fn new(source: &'a str) -> TokenStream<'a> {
        let mut stream = TokenStream {
            lexer: Some(Lexer::new(source)),
            ahead: VecDeque::new(),
            error: None,
        };
        stream.fill();
        stream
    }

    /// A list of tokens lexed beforehand (by [`crate::lexer::lex`]: it ends with `Eof`).
    pub fn from_tokens(tokens: Vec<Token>) -> TokenStream<'a> {
        TokenStream {
            lexer: None,
            ahead: tokens.into(),
            error: None,
        }
    }

    /// Lexes until [`LOOKAHEAD`] tokens are ahead or none are left to lex.
    fn fill(&mut self) {
        while self.ahead.len() < LOOKAHEAD {
            let Some(lexer) = &mut self.lexer else {
                return;
            };
            match lexer.more() {
                Ok(true) => self.ahead.extend(lexer.tokens.drain(..)),
                Ok(false) => self.lexer = None,
                Err(e) => {
                    self.ahead.push_back(Token {
                        tok: Tok::Eof,
                        span: e.span,
                    });
                    self.error = Some(e);
                    self.lexer = None;
                }
            }
        }
    }

    /// The `n`th token ahead (0: the next one); `Eof` past the end.
    pub fn peek_at(&self, n: usize) -> &Token {
        &self.ahead[n.min(self.ahead.len() - 1)]
    }

    /// Takes the next token (`Eof` stays, however many times it is taken).
    pub fn advance(&mut self) -> Token {
        if self.ahead.len() == 1 {
            return self.ahead[0].clone();
        }
        let t = self.ahead.pop_front().expect("more than one token ahead");
        self.fill();
        t
    }

    /// The lexer's first error, if the source has one (the rest of it is lexed to find it,
    /// the tokens dropped): reported instead of whatever the parser made of the tokens, as
    /// when the source was lexed whole before parsing (an unclosed bracket is reported as
    /// such, not as the syntax error it makes of the lines after it).
    pub fn lex_error(&mut self) -> Option<Diagnostic> {
        if let Some(lexer) = &mut self.lexer {
            loop {
                match lexer.more() {
                    Ok(true) => lexer.tokens.clear(),
                    Ok(false) => break,
                    Err(e) => {
                        self.error = Some(e);
                        break;
                    }
                }
            }
            self.lexer = None;
        }
        self.error.take()
    }
}
