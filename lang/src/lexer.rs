//! The lexer: source text to tokens, with INDENT/DEDENT for blocks, implicit line joining inside
//! brackets, backslash continuation, and every literal form of LANGUAGE.md decoded.

use crate::ast::BinOp;
use crate::diag::{Diagnostic, Span};
use crate::token::FPart;
use crate::token::{Tok, Token};

/// Checks that `bytes` is UTF-8 and returns it as text; otherwise a SyntaxError pointing at the
/// first bad byte (the contract makes a non-UTF-8 file a SyntaxError).
pub fn decode_source(bytes: &[u8]) -> Result<&str, Diagnostic> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        // `good` is valid UTF-8 by construction.
        let good = std::str::from_utf8(good).unwrap_or("");
        let line = good.matches('\n').count() as u32 + 1;
        let col = good.rsplit('\n').next().unwrap_or("").chars().count() as u32 + 1;
        Diagnostic::new(
            format!(
                "invalid UTF-8 in source (byte 0x{:02x})",
                bytes[e.valid_up_to()]
            ),
            Span::new(line, col),
        )
    })
}

/// Splits `source` into tokens. The token list always ends with `Newline` (if there was any
/// token), the `Dedent`s closing every open block, and `Eof`. The parser does not take the
/// list whole: it pulls the tokens a line at a time ([`crate::token_stream`]).
pub fn lex(source: &str) -> Result<Vec<Token>, Diagnostic> {
    let mut lexer = Lexer::new(source);
    while lexer.more()? {}
    Ok(lexer.tokens)
}

/// The lexer's state: it reads the source in place (a byte position into it, not a copy of
/// its characters: 4 bytes per byte of source) and is run a line at a time ([`Lexer::more`]).
pub(crate) struct Lexer<'a> {
    src: &'a str,
    /// Byte offset of the next character in `src`.
    pos: usize,
    line: u32,
    col: u32,
    /// The tokens made and not yet taken (`more` adds to them).
    pub(crate) tokens: Vec<Token>,
    /// Widths of the open indentation levels; always starts with 0.
    indents: Vec<u32>,
    /// Open brackets and where they were opened.
    brackets: Vec<(char, Span)>,
    /// True at the start of a physical line outside brackets (indentation is measured there).
    at_line_start: bool,
    /// True when the current logical line has produced a token (so a `Newline` is due).
    line_has_tokens: bool,
    /// True once the final `Eof` is out.
    finished: bool,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(source: &'a str) -> Lexer<'a> {
        // A UTF-8 byte-order mark is not part of the program (Python skips it too).
        let source = source.strip_prefix('\u{feff}').unwrap_or(source);
        Lexer {
            src: source,
            pos: 0,
            line: 1,
            col: 1,
            tokens: Vec::new(),
            indents: vec![0],
            brackets: Vec::new(),
            at_line_start: true,
            line_has_tokens: false,
            finished: false,
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    /// At a `quote` character inside a string literal: whether it closes the literal (one
    /// quote, or three for a triple-quoted one); if so, consumes the closing quote(s).
    fn eat_closing_quote(&mut self, quote: char, triple: bool) -> bool {
        let closes = !triple || (self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote));
        if closes {
            for _ in 0..if triple { 3 } else { 1 } {
                self.bump();
            }
        }
        closes
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(n)
    }

    fn span(&self) -> Span {
        Span::new(self.line, self.col)
    }

    /// Consumes one character, keeping line and column up to date.
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn push(&mut self, tok: Tok, span: Span) {
        self.tokens.push(Token { tok, span });
        self.line_has_tokens = true;
    }

    /// Lexes on until at least one more token is in `tokens` (the rest of a logical line,
    /// or the end of the source: then the `Dedent`s and `Eof`); false once `Eof` is out.
    pub(crate) fn more(&mut self) -> Result<bool, Diagnostic> {
        if self.finished {
            return Ok(false);
        }
        let before = self.tokens.len();
        while self.tokens.len() == before {
            if !self.step()? {
                self.finish()?;
            }
        }
        Ok(true)
    }

    /// Lexes what starts at the next character (a token, blanks, a comment, a line end, the
    /// indentation of a line); false at the end of the source.
    fn step(&mut self) -> Result<bool, Diagnostic> {
        if self.at_line_start && self.brackets.is_empty() {
            self.indentation()?;
            if self.at_line_start {
                // A blank or comment-only line was skipped; look at the next one.
                return Ok(self.peek().is_some());
            }
        }
        let Some(c) = self.peek() else {
            return Ok(false);
        };
        let start = self.span();
        match c {
            ' ' | '\t' | '\x0c' => {
                self.bump();
            }
            '#' => self.skip_comment(),
            '\\' => {
                self.bump();
                match self.peek() {
                    Some('\n') => {
                        self.bump();
                    }
                    Some('\r') if self.peek_at(1) == Some('\n') => {
                        self.bump();
                        self.bump();
                    }
                    _ => {
                        return Err(Diagnostic::new(
                            "unexpected character after line continuation character",
                            start,
                        ))
                    }
                }
            }
            '\n' | '\r' => {
                self.bump();
                if c == '\r' && self.peek() == Some('\n') {
                    self.bump();
                }
                if self.brackets.is_empty() {
                    self.end_logical_line(start);
                    self.at_line_start = true;
                }
            }
            '0'..='9' => self.number()?,
            '.' if matches!(self.peek_at(1), Some('0'..='9')) => self.number()?,
            '"' | '\'' => self.string()?,
            c if c == '_' || c.is_alphabetic() => self.name()?,
            _ => self.operator()?,
        }
        Ok(true)
    }

    /// At the end of the source: the last `Newline`, the `Dedent`s closing every open block,
    /// then `Eof`.
    fn finish(&mut self) -> Result<(), Diagnostic> {
        if let Some(&(open, span)) = self.brackets.first() {
            return Err(Diagnostic::new(format!("'{open}' was never closed"), span));
        }
        let end = self.span();
        self.end_logical_line(end);
        while self.indents.len() > 1 {
            self.indents.pop();
            self.tokens.push(Token {
                tok: Tok::Dedent,
                span: end,
            });
        }
        self.tokens.push(Token {
            tok: Tok::Eof,
            span: end,
        });
        self.finished = true;
        Ok(())
    }

    fn end_logical_line(&mut self, span: Span) {
        if self.line_has_tokens {
            self.tokens.push(Token {
                tok: Tok::Newline,
                span,
            });
            self.line_has_tokens = false;
        }
    }

    fn skip_comment(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' || c == '\r' {
                break;
            }
            self.bump();
        }
    }

    /// Measures the indentation of a new line and emits INDENT/DEDENT. Leaves `at_line_start`
    /// set when the line is blank or only a comment (such lines do not affect blocks).
    fn indentation(&mut self) -> Result<(), Diagnostic> {
        let mut width = 0u32;
        let mut tab_at = None;
        loop {
            match self.peek() {
                Some(' ') => width += 1,
                Some('\x0c') => width = 0,
                Some('\t') => {
                    tab_at.get_or_insert(self.span());
                }
                _ => break,
            }
            self.bump();
        }
        match self.peek() {
            None => return Ok(()),
            Some('#') => {
                self.skip_comment();
                return Ok(());
            }
            Some('\n') | Some('\r') => {
                self.bump();
                if self.peek() == Some('\n') {
                    self.bump();
                }
                return Ok(());
            }
            _ => {}
        }
        if let Some(span) = tab_at {
            return Err(Diagnostic::new(
                "tab in indentation (indent with spaces only)",
                span,
            ));
        }
        self.at_line_start = false;
        let here = self.span();
        let current = *self.indents.last().unwrap_or(&0);
        if width > current {
            self.indents.push(width);
            self.tokens.push(Token {
                tok: Tok::Indent,
                span: here,
            });
        } else if width < current {
            while width < *self.indents.last().unwrap_or(&0) {
                self.indents.pop();
                self.tokens.push(Token {
                    tok: Tok::Dedent,
                    span: here,
                });
            }
            if width != *self.indents.last().unwrap_or(&0) {
                return Err(Diagnostic::new(
                    "unindent does not match any outer indentation level",
                    here,
                ));
            }
        }
        Ok(())
    }

    fn name(&mut self) -> Result<(), Diagnostic> {
        let start = self.span();
        let mut word = String::new();
        while let Some(c) = self.peek() {
            if c == '_' || c.is_alphanumeric() {
                word.push(c);
                self.bump();
            } else {
                break;
            }
        }
        if matches!(self.peek(), Some('"' | '\'')) {
            // A string prefix: `r` (raw) and `u` as in Python; the others are named.
            match word.to_ascii_lowercase().as_str() {
                "r" => return self.string_literal(true, start),
                "u" => return self.string_literal(false, start),
                "f" => return self.fstring(false, start),
                "rf" | "fr" => return self.fstring(true, start),
                "b" | "br" | "rb" => {
                    return Err(Diagnostic::new("bytes literals are not supported", start))
                }
                _ => {}
            }
        }
        let tok = Tok::keyword(&word).unwrap_or(Tok::Name(word));
        self.push(tok, start);
        Ok(())
    }

    /// Reads digits of the given radix with single underscores between them; returns them
    /// without underscores. `what` names the literal in error messages.
    fn digits(&mut self, radix: u32, text: &mut String) -> Result<(), Diagnostic> {
        let mut last_underscore = false;
        while let Some(c) = self.peek() {
            if c == '_' {
                let next_ok = self.peek_at(1).is_some_and(|d| d.is_digit(radix));
                if last_underscore || !next_ok {
                    return Err(Diagnostic::new("invalid number literal", self.span()));
                }
                last_underscore = true;
                self.bump();
            } else if c.is_digit(radix) {
                last_underscore = false;
                text.push(c);
                self.bump();
            } else {
                break;
            }
        }
        Ok(())
    }

    fn number(&mut self) -> Result<(), Diagnostic> {
        let start = self.span();
        let mut text = String::new();
        let radix = match (self.peek(), self.peek_at(1)) {
            (Some('0'), Some('x' | 'X')) => 16,
            (Some('0'), Some('o' | 'O')) => 8,
            (Some('0'), Some('b' | 'B')) => 2,
            _ => 10,
        };
        if radix != 10 {
            self.bump();
            self.bump();
            if self.peek() == Some('_') {
                self.bump();
            }
            self.digits(radix, &mut text)?;
            if text.is_empty() {
                return Err(Diagnostic::new("invalid number literal", start));
            }
            self.no_trailing_name(start)?;
            let tok = match u64::from_str_radix(&text, radix) {
                Ok(value) => Tok::Int(value),
                // Beyond u64: any size, as in Python (no digit limit for power-of-two bases).
                Err(_) => Tok::BigInt(
                    num_bigint::BigUint::parse_bytes(text.as_bytes(), radix)
                        .ok_or_else(|| Diagnostic::new("invalid number literal", start))?
                        .to_string(),
                ),
            };
            self.push(tok, start);
            return Ok(());
        }
        self.digits(10, &mut text)?;
        let mut is_float = false;
        if self.peek() == Some('.') && self.peek_at(1).is_none_or(|c| c != '_') {
            is_float = true;
            text.push('.');
            self.bump();
            self.digits(10, &mut text)?;
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let sign = matches!(self.peek_at(1), Some('+' | '-'));
            let digit_at = if sign { 2 } else { 1 };
            if self.peek_at(digit_at).is_some_and(|c| c.is_ascii_digit()) {
                is_float = true;
                text.push('e');
                self.bump();
                if sign {
                    text.push(self.bump().unwrap_or('+'));
                }
                self.digits(10, &mut text)?;
            }
        }
        self.no_trailing_name(start)?;
        if is_float {
            let value: f64 = text
                .parse()
                .map_err(|_| Diagnostic::new("invalid number literal", start))?;
            self.push(Tok::Float(value), start);
        } else {
            if text.len() > 1 && text.starts_with('0') && text.chars().any(|c| c != '0') {
                return Err(Diagnostic::new(
                    "leading zeros in decimal integer literals are not permitted",
                    start,
                ));
            }
            let tok = match text.parse::<u64>() {
                Ok(value) => Tok::Int(value),
                Err(_) if text.len() > crate::bigint::MAX_STR_DIGITS => {
                    // CPython 3.11's limit on decimal conversions applies to literals too.
                    return Err(Diagnostic::new(
                        format!(
                            "Exceeds the limit ({} digits) for integer string conversion: value \
                             has {} digits; use sys.set_int_max_str_digits() to increase the \
                             limit - Consider hexadecimal for huge integer literals to avoid \
                             decimal conversion limits.",
                            crate::bigint::MAX_STR_DIGITS,
                            text.len()
                        ),
                        start,
                    ));
                }
                Err(_) => Tok::BigInt(text.trim_start_matches('0').to_string()),
            };
            self.push(tok, start);
        }
        Ok(())
    }

    /// `1abc` or `0x1g` is one bad literal, not a number followed by a name.
    fn no_trailing_name(&self, start: Span) -> Result<(), Diagnostic> {
        match self.peek() {
            Some(c) if c == '_' || c.is_alphanumeric() => {
                Err(Diagnostic::new("invalid number literal", start))
            }
            _ => Ok(()),
        }
    }

    fn string(&mut self) -> Result<(), Diagnostic> {
        let start = self.span();
        self.string_literal(false, start)
    }

    /// An f-string from its opening quote: text with escapes (unless `raw`), `{{` and `}}`,
    /// and replacement fields `{expr!conv:spec}` whose expressions the parser reads.
    fn fstring(&mut self, raw: bool, start: Span) -> Result<(), Diagnostic> {
        let quote = self.bump().unwrap_or('"');
        let triple = self.peek() == Some(quote) && self.peek_at(1) == Some(quote);
        if triple {
            self.bump();
            self.bump();
        }
        let parts = self.fstring_parts(quote, triple, raw, start, false)?;
        self.push(Tok::FString(parts), start);
        Ok(())
    }

    /// The parts of an f-string up to its closing quote (or, `in_spec`, up to the `}` that
    /// ends a format spec, left unread).
    fn fstring_parts(
        &mut self,
        quote: char,
        triple: bool,
        raw: bool,
        start: Span,
        in_spec: bool,
    ) -> Result<Vec<FPart>, Diagnostic> {
        let mut parts = Vec::new();
        let mut text = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(Diagnostic::new("unterminated f-string literal", start));
            };
            if in_spec && c == '}' {
                break;
            }
            if c == quote {
                if in_spec {
                    return Err(Diagnostic::new("f-string: expecting '}'", self.span()));
                }
                if self.eat_closing_quote(quote, triple) {
                    break;
                }
            }
            if (c == '\n' || c == '\r') && !triple {
                return Err(Diagnostic::new("unterminated f-string literal", start));
            }
            match c {
                '\\' if !raw => self.escape(&mut text)?,
                '{' if !in_spec && self.peek_at(1) == Some('{') => {
                    self.bump();
                    self.bump();
                    text.push('{');
                }
                '}' if self.peek_at(1) == Some('}') => {
                    self.bump();
                    self.bump();
                    text.push('}');
                }
                '}' => {
                    return Err(Diagnostic::new(
                        "f-string: single '}' is not allowed",
                        self.span(),
                    ))
                }
                '{' => {
                    if !text.is_empty() {
                        parts.push(FPart::Lit(std::mem::take(&mut text)));
                    }
                    self.fstring_field(quote, triple, raw, start, &mut parts)?;
                }
                _ => {
                    text.push(c);
                    self.bump();
                }
            }
        }
        if !text.is_empty() {
            parts.push(FPart::Lit(text));
        }
        Ok(parts)
    }

    /// One replacement field, from its `{` through its `}`.
    fn fstring_field(
        &mut self,
        quote: char,
        triple: bool,
        raw: bool,
        start: Span,
        parts: &mut Vec<FPart>,
    ) -> Result<(), Diagnostic> {
        self.bump(); // {
        let at = self.span();
        let mut src = String::new();
        let mut depth = 0usize;
        let mut in_str: Option<char> = None;
        loop {
            let Some(c) = self.peek() else {
                return Err(Diagnostic::new("f-string: expecting '}'", at));
            };
            if c == quote && in_str.is_none() || (c == '\n' && !triple) {
                return Err(Diagnostic::new("f-string: expecting '}'", self.span()));
            }
            if let Some(q) = in_str {
                if c == q {
                    in_str = None;
                }
            } else {
                match c {
                    '\'' | '"' => in_str = Some(c),
                    '(' | '[' | '{' => depth += 1,
                    ')' | ']' | '}' if depth > 0 => depth -= 1,
                    '}' => break,
                    '!' if depth == 0 && self.peek_at(1) != Some('=') => break,
                    ':' if depth == 0 => break,
                    '\\' => {
                        return Err(Diagnostic::new(
                            "f-string expression part cannot include a backslash",
                            self.span(),
                        ))
                    }
                    _ => {}
                }
            }
            src.push(c);
            self.bump();
        }
        if src.trim().is_empty() {
            return Err(Diagnostic::new(
                "f-string: empty expression not allowed",
                at,
            ));
        }
        // `{x=}`: the expression's text, then its repr (unless a conversion or spec follows).
        let trimmed = src.trim_end();
        let self_doc = trimmed.ends_with('=')
            && !trimmed.ends_with("==")
            && !trimmed.ends_with("!=")
            && !trimmed.ends_with("<=")
            && !trimmed.ends_with(">=");
        let mut conv = None;
        if self_doc {
            parts.push(FPart::Lit(src.clone()));
            src = trimmed[..trimmed.len() - 1].to_string();
        }
        if self.peek() == Some('!') {
            self.bump();
            match self.peek() {
                Some(k @ ('r' | 's')) => {
                    conv = Some(k);
                    self.bump();
                }
                _ => {
                    return Err(Diagnostic::new(
                        "f-string: invalid conversion character: expected 's' or 'r'",
                        self.span(),
                    ))
                }
            }
        }
        let mut spec = Vec::new();
        if self.peek() == Some(':') {
            self.bump();
            spec = self.fstring_parts(quote, triple, raw, start, true)?;
        }
        if self.peek() != Some('}') {
            return Err(Diagnostic::new("f-string: expecting '}'", self.span()));
        }
        self.bump();
        if self_doc && conv.is_none() && spec.is_empty() {
            conv = Some('r');
        }
        parts.push(FPart::Field {
            src,
            span: at,
            conv,
            spec,
        });
        Ok(())
    }

    /// A string literal from its opening quote; `raw`: backslashes stay as written (`r"..."`).
    fn string_literal(&mut self, raw: bool, start: Span) -> Result<(), Diagnostic> {
        let quote = self.bump().unwrap_or('"');
        let triple = self.peek() == Some(quote) && self.peek_at(1) == Some(quote);
        if triple {
            self.bump();
            self.bump();
        }
        let mut value = String::new();
        loop {
            let Some(c) = self.peek() else {
                let what = if triple {
                    "unterminated triple-quoted string literal"
                } else {
                    "unterminated string literal"
                };
                return Err(Diagnostic::new(what, start));
            };
            if c == quote && self.eat_closing_quote(quote, triple) {
                break;
            }
            if (c == '\n' || c == '\r') && !triple {
                return Err(Diagnostic::new("unterminated string literal", start));
            }
            if c == '\\' && raw {
                // A backslash keeps the character after it (even a quote) in the literal.
                value.push(c);
                self.bump();
                if let Some(next) = self.peek() {
                    if next != '\n' && next != '\r' || triple {
                        value.push(next);
                        self.bump();
                    }
                }
                continue;
            }
            if c == '\\' {
                self.escape(&mut value)?;
                continue;
            }
            if c == '\r' {
                // Normalize CRLF / CR inside triple-quoted strings to "\n", as Python does.
                self.bump();
                if self.peek() == Some('\n') {
                    self.bump();
                }
                value.push('\n');
                continue;
            }
            value.push(c);
            self.bump();
        }
        self.push(Tok::Str(value), start);
        Ok(())
    }

    fn hex_digits(&mut self, count: usize, at: Span) -> Result<u32, Diagnostic> {
        let mut v = 0u32;
        for _ in 0..count {
            let d = self
                .peek()
                .and_then(|c| c.to_digit(16))
                .ok_or_else(|| Diagnostic::new("truncated escape sequence", at))?;
            v = v * 16 + d;
            self.bump();
        }
        Ok(v)
    }

    fn escape(&mut self, out: &mut String) -> Result<(), Diagnostic> {
        let at = self.span();
        self.bump(); // the backslash
        let Some(c) = self.peek() else {
            return Err(Diagnostic::new("unterminated string literal", at));
        };
        let simple = match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            '\'' => Some('\''),
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'v' => Some('\x0b'),
            _ => None,
        };
        if let Some(ch) = simple {
            self.bump();
            out.push(ch);
            return Ok(());
        }
        match c {
            '\n' => {
                // Backslash-newline inside a string joins lines, as in Python.
                self.bump();
            }
            '0'..='7' => {
                // Octal: one to three digits, as in Python (`\0`, `\101`).
                let mut v = 0u32;
                for _ in 0..3 {
                    match self.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            self.bump();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            }
            'U' => {
                self.bump();
                let v = self.hex_digits(8, at)?;
                let ch = char::from_u32(v).ok_or_else(|| {
                    Diagnostic::new(format!("invalid character U+{v:X} in \\U escape"), at)
                })?;
                out.push(ch);
            }
            'N' => {
                return Err(Diagnostic::new(
                    "\\N{...} escapes (characters by name) are not supported; write the character or \\uXXXX",
                    at,
                ));
            }
            'x' => {
                self.bump();
                let v = self.hex_digits(2, at)?;
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            }
            'u' => {
                self.bump();
                let v = if self.peek() == Some('{') {
                    self.bump();
                    let mut v = 0u32;
                    let mut n = 0;
                    while let Some(d) = self.peek().and_then(|c| c.to_digit(16)) {
                        v = v.saturating_mul(16).saturating_add(d);
                        n += 1;
                        self.bump();
                    }
                    if n == 0 || n > 6 || self.peek() != Some('}') {
                        return Err(Diagnostic::new("invalid \\u{...} escape", at));
                    }
                    self.bump();
                    v
                } else {
                    self.hex_digits(4, at)?
                };
                let ch = char::from_u32(v).ok_or_else(|| {
                    Diagnostic::new(format!("invalid character U+{v:X} in \\u escape"), at)
                })?;
                out.push(ch);
            }
            _ => {
                // Unknown escapes keep the backslash, as in Python.
                out.push('\\');
            }
        }
        Ok(())
    }

    fn open(&mut self, c: char, tok: Tok, start: Span) {
        self.brackets.push((c, start));
        self.push(tok, start);
    }

    fn close(&mut self, c: char, tok: Tok, start: Span) -> Result<(), Diagnostic> {
        let want = match c {
            ')' => '(',
            ']' => '[',
            _ => '{',
        };
        match self.brackets.pop() {
            None => return Err(Diagnostic::new(format!("unmatched '{c}'"), start)),
            Some((open, _)) if open != want => {
                return Err(Diagnostic::new(
                    format!(
                        "closing parenthesis '{c}' does not match opening parenthesis '{open}'"
                    ),
                    start,
                ))
            }
            Some(_) => {}
        }
        self.push(tok, start);
        Ok(())
    }

    fn operator(&mut self) -> Result<(), Diagnostic> {
        let start = self.span();
        let c = self.peek().unwrap_or(' ');
        let c1 = self.peek_at(1);
        let c2 = self.peek_at(2);
        // Longest match first.
        let (tok, len) = match (c, c1, c2) {
            ('*', Some('*'), Some('=')) => (Tok::AugAssign(BinOp::Pow), 3),
            ('/', Some('/'), Some('=')) => (Tok::AugAssign(BinOp::FloorDiv), 3),
            ('<', Some('<'), Some('=')) => (Tok::AugAssign(BinOp::Shl), 3),
            ('>', Some('>'), Some('=')) => (Tok::AugAssign(BinOp::Shr), 3),
            ('*', Some('*'), _) => (Tok::DoubleStar, 2),
            ('/', Some('/'), _) => (Tok::DoubleSlash, 2),
            ('<', Some('<'), _) => (Tok::LShift, 2),
            ('>', Some('>'), _) => (Tok::RShift, 2),
            ('<', Some('='), _) => (Tok::Le, 2),
            ('>', Some('='), _) => (Tok::Ge, 2),
            ('=', Some('='), _) => (Tok::EqEq, 2),
            ('!', Some('='), _) => (Tok::NotEq, 2),
            ('+', Some('='), _) => (Tok::AugAssign(BinOp::Add), 2),
            ('-', Some('='), _) => (Tok::AugAssign(BinOp::Sub), 2),
            ('*', Some('='), _) => (Tok::AugAssign(BinOp::Mul), 2),
            ('/', Some('='), _) => (Tok::AugAssign(BinOp::Div), 2),
            ('%', Some('='), _) => (Tok::AugAssign(BinOp::Mod), 2),
            ('&', Some('='), _) => (Tok::AugAssign(BinOp::BitAnd), 2),
            ('|', Some('='), _) => (Tok::AugAssign(BinOp::BitOr), 2),
            ('^', Some('='), _) => (Tok::AugAssign(BinOp::BitXor), 2),
            ('+', ..) => (Tok::Plus, 1),
            ('-', ..) => (Tok::Minus, 1),
            ('*', ..) => (Tok::Star, 1),
            ('/', ..) => (Tok::Slash, 1),
            ('%', ..) => (Tok::Percent, 1),
            ('&', ..) => (Tok::Amp, 1),
            ('|', ..) => (Tok::Pipe, 1),
            ('^', ..) => (Tok::Caret, 1),
            ('~', ..) => (Tok::Tilde, 1),
            ('<', ..) => (Tok::Lt, 1),
            ('>', ..) => (Tok::Gt, 1),
            ('=', ..) => (Tok::Assign, 1),
            (',', ..) => (Tok::Comma, 1),
            (':', ..) => (Tok::Colon, 1),
            ('.', ..) => (Tok::Dot, 1),
            (';', ..) => (Tok::Semi, 1),
            ('(', ..) => {
                self.bump();
                self.open('(', Tok::LParen, start);
                return Ok(());
            }
            ('[', ..) => {
                self.bump();
                self.open('[', Tok::LBracket, start);
                return Ok(());
            }
            ('{', ..) => {
                self.bump();
                self.open('{', Tok::LBrace, start);
                return Ok(());
            }
            (')', ..) => {
                self.bump();
                return self.close(')', Tok::RParen, start);
            }
            (']', ..) => {
                self.bump();
                return self.close(']', Tok::RBracket, start);
            }
            ('}', ..) => {
                self.bump();
                return self.close('}', Tok::RBrace, start);
            }
            ('@', ..) => {
                return Err(Diagnostic::new(
                    "'@' is not supported (no decorators, no matrix product)",
                    start,
                ))
            }
            _ => {
                let shown = if c.is_control() || c.is_whitespace() {
                    format!("U+{:04X}", c as u32)
                } else {
                    format!("'{c}'")
                };
                return Err(Diagnostic::new(format!("invalid character {shown}"), start));
            }
        };
        for _ in 0..len {
            self.bump();
        }
        self.push(tok, start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        lex(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn literals() {
        assert_eq!(
            toks("1_000 0x2A .5 2e-3 1_0.0 5."),
            vec![
                Tok::Int(1000),
                Tok::Int(42),
                Tok::Float(0.5),
                Tok::Float(0.002),
                Tok::Float(10.0),
                Tok::Float(5.0),
                Tok::Newline,
                Tok::Eof
            ]
        );
        assert_eq!(
            toks(r#"'a\n\t\r\\\"\'\0\x41\u{e9}\u00e9'"#)[0],
            Tok::Str("a\n\t\r\\\"'\0A\u{e9}\u{e9}".to_string())
        );
    }

    #[test]
    fn indentation_and_joining() {
        let t = toks("if x:\n    y = (1,\n  2)\n\n    # c\nz\n");
        assert_eq!(
            t,
            vec![
                Tok::If,
                Tok::Name("x".into()),
                Tok::Colon,
                Tok::Newline,
                Tok::Indent,
                Tok::Name("y".into()),
                Tok::Assign,
                Tok::LParen,
                Tok::Int(1),
                Tok::Comma,
                Tok::Int(2),
                Tok::RParen,
                Tok::Newline,
                Tok::Dedent,
                Tok::Name("z".into()),
                Tok::Newline,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn positions() {
        let t = lex("a =  bc\n  # x\nd").unwrap();
        assert_eq!(t[0].span, Span::new(1, 1));
        assert_eq!(t[1].span, Span::new(1, 3));
        assert_eq!(t[2].span, Span::new(1, 6));
        assert_eq!(t[4].span, Span::new(3, 1));
    }

    #[test]
    fn errors() {
        let e = |s: &str| lex(s).unwrap_err();
        assert_eq!(e("x = 'abc\n").span, Span::new(1, 5));
        assert!(e("if x:\n\ty\n").message.contains("tab"));
        assert_eq!(
            e("(1, 2]").message,
            "closing parenthesis ']' does not match opening parenthesis '('"
        );
        assert_eq!(e("f(1,\n2").message, "'(' was never closed");
        assert_eq!(e("x)").message, "unmatched ')'");
        assert!(e("if x:\n    y\n  z\n").message.contains("unindent"));
        assert!(e("1__0").message.contains("invalid"));
        assert!(e("12abc").message.contains("invalid"));
        assert!(e("x = $").message.contains("invalid character"));
        assert!(matches!(
            &lex("99999999999999999999").unwrap()[0].tok,
            Tok::BigInt(d) if d == "99999999999999999999"
        ));
        assert!(matches!(
            &lex("0x1_0000_0000_0000_0000").unwrap()[0].tok,
            Tok::BigInt(d) if d == "18446744073709551616"
        ));
        assert!(e(&"1".repeat(4301))
            .message
            .contains("value has 4301 digits"));
        assert!(lex("\u{feff}x = 1\r\nif x:\r\n    y\r\n").is_ok());
        let d = decode_source(b"x = 1\ny = \xff\n").unwrap_err();
        assert_eq!(d.span, Span::new(2, 5));
    }
}
