//! nginx's configuration syntax: words (bare, `"..."` or `'...'` quoted,
//! with backslash escapes), `#` comments, directives ended by `;`, and
//! blocks in `{` `}`. Read as nginx's own reader does, but tolerant: a
//! file nginx would refuse still gives what it says up to the mistake, and
//! the mistake is noted, since netmem names what it can rather than fail.
//!
//! The text comes from a process netmem does not trust, so everything is
//! capped: a word's length, a directive's words, the nesting of blocks
//! (kept on a heap stack, never the call stack) and the directives of one
//! configuration. Nothing here panics on any input.

/// One directive: its name, its arguments, and its block if it has one
/// (`http { ... }`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub block: Option<Vec<Directive>>,
    /// Where it is written, for notes: (file, line).
    pub at: (usize, u32),
}

impl Directive {
    pub fn arg(&self, i: usize) -> &str {
        self.args.get(i).map(String::as_str).unwrap_or("")
    }
}

/// A word longer than this is cut (nginx's own limit is 4 KiB less a
/// little for most words; a long `map` value or regex is still short).
pub const WORD_MAX_BYTES: usize = 64 << 10;
/// Words in one directive at most; the rest are dropped.
pub const WORDS_MAX: usize = 1024;
/// Blocks nested in blocks at most, counted across `include`s.
pub const DEPTH_MAX: usize = 64;

/// What parsing one file gave, and what was wrong with it.
#[derive(Debug, Default)]
pub struct Parsed {
    pub directives: Vec<Directive>,
    pub notes: Vec<String>,
    /// Directives read (blocks' contents included).
    pub count: usize,
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Semi,
    Open,
    Close,
}

/// Splits text into tokens, with the line each starts on.
struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
    line: u32,
    /// A word was cut at [`WORD_MAX_BYTES`] (noted once).
    cut: bool,
    /// A quoted string ran to the end of the text.
    unterminated: bool,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            s: text.as_bytes(),
            i: 0,
            line: 1,
            cut: false,
            unterminated: false,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        if c == b'\n' {
            self.line = self.line.saturating_add(1);
        }
        Some(c)
    }

    fn push(&mut self, w: &mut Vec<u8>, c: u8) {
        if w.len() < WORD_MAX_BYTES {
            w.push(c);
        } else {
            self.cut = true;
        }
    }

    fn next(&mut self) -> Option<(Token, u32)> {
        // Whitespace and comments between tokens.
        loop {
            match self.peek()? {
                c if c.is_ascii_whitespace() => {
                    self.bump();
                }
                b'#' => while self.bump().is_some_and(|c| c != b'\n') {},
                _ => break,
            }
        }
        let line = self.line;
        let c = self.bump()?;
        let tok = match c {
            b';' => Token::Semi,
            b'{' => Token::Open,
            b'}' => Token::Close,
            b'"' | b'\'' => Token::Word(self.quoted(c)),
            _ => {
                let mut w = Vec::new();
                self.push(&mut w, c);
                // `${name}` is a variable inside a word, not a block.
                let mut braces = 0usize;
                let mut prev = c;
                if c == b'\\' {
                    if let Some(n) = self.bump() {
                        self.push(&mut w, n);
                        prev = 0;
                    }
                }
                while let Some(c) = self.peek() {
                    match c {
                        b'{' if prev == b'$' => braces += 1,
                        b'}' if braces > 0 => braces -= 1,
                        b'{' | b'}' | b';' => break,
                        c if c.is_ascii_whitespace() && braces == 0 => break,
                        _ => {}
                    }
                    self.bump();
                    self.push(&mut w, c);
                    prev = c;
                    if c == b'\\' {
                        // Escaped: taken as is, whatever it is.
                        if let Some(n) = self.bump() {
                            self.push(&mut w, n);
                            prev = 0;
                        }
                    }
                }
                Token::Word(String::from_utf8_lossy(&w).into_owned())
            }
        };
        Some((tok, line))
    }

    /// A quoted word, its escapes resolved as nginx resolves them.
    fn quoted(&mut self, q: u8) -> String {
        let mut w = Vec::new();
        loop {
            let Some(c) = self.bump() else {
                self.unterminated = true;
                break;
            };
            match c {
                c if c == q => break,
                b'\\' => match self.bump() {
                    Some(b'"') => self.push(&mut w, b'"'),
                    Some(b'\'') => self.push(&mut w, b'\''),
                    Some(b'\\') => self.push(&mut w, b'\\'),
                    Some(b't') => self.push(&mut w, b'\t'),
                    Some(b'r') => self.push(&mut w, b'\r'),
                    Some(b'n') => self.push(&mut w, b'\n'),
                    Some(n) => {
                        self.push(&mut w, b'\\');
                        self.push(&mut w, n);
                    }
                    None => {
                        self.unterminated = true;
                        break;
                    }
                },
                c => self.push(&mut w, c),
            }
        }
        String::from_utf8_lossy(&w).into_owned()
    }
}

/// Parses one file's text (`file`: its index, for notes) whose blocks
/// start `depth` blocks deep (an included file's place), reading at most
/// `budget` directives.
pub fn parse(text: &str, file: usize, depth: usize, budget: usize) -> Parsed {
    let mut out = Parsed::default();
    let mut lx = Lexer::new(text);
    // The blocks open now, innermost last: the directive that opened each,
    // with its contents so far.
    let mut stack: Vec<Directive> = Vec::new();
    let mut top: Vec<Directive> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut line = 0u32;
    let mut dropped_words = false;
    let mut too_deep = 0usize;
    let mut stray_close = false;
    fn current<'a>(
        top: &'a mut Vec<Directive>,
        stack: &'a mut [Directive],
    ) -> &'a mut Vec<Directive> {
        match stack.last_mut() {
            Some(d) => d.block.get_or_insert_with(Vec::new),
            None => top,
        }
    }
    while let Some((tok, at)) = lx.next() {
        if out.count >= budget {
            out.notes.push(format!(
                "more than {budget} directives: the rest is not read (netmem's cap)"
            ));
            break;
        }
        match tok {
            Token::Word(w) => {
                if words.is_empty() {
                    line = at;
                }
                if words.len() < WORDS_MAX {
                    words.push(w);
                } else {
                    dropped_words = true;
                }
            }
            Token::Semi => {
                if words.is_empty() {
                    continue;
                }
                let mut w = std::mem::take(&mut words).into_iter();
                let d = Directive {
                    name: w.next().unwrap_or_default(),
                    args: w.collect(),
                    block: None,
                    at: (file, line),
                };
                out.count += 1;
                if too_deep == 0 {
                    current(&mut top, &mut stack).push(d);
                }
            }
            Token::Open => {
                let mut w = std::mem::take(&mut words).into_iter();
                let d = Directive {
                    name: w.next().unwrap_or_default(),
                    args: w.collect(),
                    block: Some(Vec::new()),
                    at: (file, if line == 0 { at } else { line }),
                };
                out.count += 1;
                if too_deep > 0 || depth + stack.len() >= DEPTH_MAX {
                    // Skipped with everything inside it.
                    too_deep += 1;
                } else {
                    stack.push(d);
                }
                line = 0;
            }
            Token::Close => {
                if !words.is_empty() {
                    out.notes.push(format!(
                        "line {at}: `{}` has no `;` before `}}`: not read",
                        words.first().map(String::as_str).unwrap_or("")
                    ));
                    words.clear();
                }
                if too_deep > 0 {
                    too_deep -= 1;
                    if too_deep == 0 {
                        out.notes.push(format!(
                            "blocks nested more than {DEPTH_MAX} deep: not read (netmem's cap)"
                        ));
                    }
                    continue;
                }
                match stack.pop() {
                    Some(d) => current(&mut top, &mut stack).push(d),
                    None => stray_close = true,
                }
            }
        }
    }
    if stray_close {
        out.notes.push("a `}` closes no block: ignored".into());
    }
    if !words.is_empty() {
        out.notes.push(format!(
            "line {line}: `{}` has no `;` at the end of the file: not read",
            words.first().map(String::as_str).unwrap_or("")
        ));
    }
    if !stack.is_empty() {
        out.notes.push(format!(
            "{} blocks not closed at the end of the file",
            stack.len()
        ));
        while let Some(d) = stack.pop() {
            current(&mut top, &mut stack).push(d);
        }
    }
    if too_deep > 0 {
        out.notes.push(format!(
            "blocks nested more than {DEPTH_MAX} deep: not read (netmem's cap)"
        ));
    }
    if lx.cut {
        out.notes.push(format!(
            "words longer than {} were cut (netmem's cap)",
            crate::format::human_bytes(WORD_MAX_BYTES as u64)
        ));
    }
    if lx.unterminated {
        out.notes
            .push("a quoted string is not closed at the end of the file".into());
    }
    if dropped_words {
        out.notes.push(format!(
            "directives of more than {WORDS_MAX} words were cut (netmem's cap)"
        ));
    }
    out.directives = top;
    out
}
