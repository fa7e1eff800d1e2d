//! Recursive-descent parser for expressions.
//!
//! Precedence, loosest first (as in GitHub Actions):
//! `||`, `&&`, `== !=`, `< <= > >=`, `!`, postfix `.`/`[]`, primary.

use super::{
    CONTEXT_ROOTS, CmpOp, Expr, ExprError, Func, MAX_AST_HEIGHT, MAX_DEPTH, MAX_EXPR_LEN,
    MAX_LIST_LEN,
};

/// Parses the inside of `${{ }}`.
pub fn parse_expr(src: &str) -> Result<Expr, ExprError> {
    if src.len() > MAX_EXPR_LEN {
        return Err(ExprError::new(
            0,
            format!("expression is longer than {MAX_EXPR_LEN} bytes"),
        ));
    }
    let mut p = Parser {
        src,
        bytes: src.as_bytes(),
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    if p.at_end() {
        return Err(ExprError::new(0, "empty expression"));
    }
    let e = p.parse_or()?;
    p.skip_ws();
    if !p.at_end() {
        return Err(ExprError::new(
            p.pos,
            format!("unexpected `{}`", p.describe_here()),
        ));
    }
    // Long operator chains are built iteratively but evaluated recursively;
    // bounding the height keeps evaluation's stack use small.
    if height(&e, 0) > MAX_AST_HEIGHT {
        return Err(ExprError::new(
            0,
            format!("expression is too complex (more than {MAX_AST_HEIGHT} levels)"),
        ));
    }
    Ok(e)
}

/// Tree height, stopping early once past the limit.
fn height(e: &Expr, at: usize) -> usize {
    if at > MAX_AST_HEIGHT {
        return at;
    }
    let next = at + 1;
    match e {
        Expr::Null | Expr::Bool(_) | Expr::Number(_) | Expr::String(_) | Expr::Context { .. } => {
            next
        }
        Expr::List(items) | Expr::Call { args: items, .. } => {
            items.iter().map(|i| height(i, next)).max().unwrap_or(next)
        }
        Expr::Property { base, .. } | Expr::Not(base) => height(base, next),
        Expr::Index { base: a, index: b }
        | Expr::Compare { lhs: a, rhs: b, .. }
        | Expr::And(a, b)
        | Expr::Or(a, b) => height(a, next).max(height(b, next)),
    }
}

struct Parser<'s> {
    src: &'s str,
    bytes: &'s [u8],
    pos: usize,
    depth: usize,
}

impl<'s> Parser<'s> {
    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.bytes.get(self.pos + n).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        self.skip_ws();
        if self
            .bytes
            .get(self.pos..)
            .is_some_and(|r| r.starts_with(s.as_bytes()))
        {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Short description of the input at the cursor, for messages.
    fn describe_here(&self) -> String {
        match self.src.get(self.pos..) {
            Some(rest) if !rest.is_empty() => rest.chars().take(12).collect(),
            _ => "end of expression".to_string(),
        }
    }

    fn err_here(&self, what: &str) -> ExprError {
        if self.at_end() {
            ExprError::new(
                self.pos,
                format!("expected {what}, found end of expression"),
            )
        } else {
            ExprError::new(
                self.pos,
                format!("expected {what}, found `{}`", self.describe_here()),
            )
        }
    }

    /// Enters a nested construct, enforcing `MAX_DEPTH`.
    fn enter(&mut self, at: usize) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ExprError::new(
                at,
                format!("expression nesting is deeper than {MAX_DEPTH}"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn parse_or(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.parse_and()?;
        while self.eat("||") {
            let rhs = self.parse_and()?;
            lhs = Expr::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn parse_and(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.parse_eq()?;
        while self.eat("&&") {
            let rhs = self.parse_eq()?;
            lhs = Expr::And(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn parse_eq(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.parse_cmp()?;
        loop {
            let op = if self.eat("==") {
                CmpOp::Eq
            } else if self.eat("!=") {
                CmpOp::Ne
            } else {
                break;
            };
            let rhs = self.parse_cmp()?;
            lhs = Expr::Compare {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok(lhs)
    }

    fn parse_cmp(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.parse_unary()?;
        loop {
            // Two-char operators first so `<=` isn't read as `<`.
            let op = if self.eat("<=") {
                CmpOp::Le
            } else if self.eat(">=") {
                CmpOp::Ge
            } else if self.eat("<") {
                CmpOp::Lt
            } else if self.eat(">") {
                CmpOp::Gt
            } else {
                break;
            };
            let rhs = self.parse_unary()?;
            lhs = Expr::Compare {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok(lhs)
    }

    fn parse_unary(&mut self) -> Result<Expr, ExprError> {
        self.skip_ws();
        if self.peek() == Some(b'!') && self.peek_at(1) != Some(b'=') {
            let at = self.pos;
            self.pos += 1;
            self.enter(at)?;
            let inner = self.parse_unary()?;
            self.leave();
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.parse_postfix()
    }

    fn parse_postfix(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.parse_primary()?;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'.') => {
                    self.pos += 1;
                    let offset = self.pos;
                    let name = self.take_name();
                    if name.is_empty() {
                        return Err(self.err_here("a property name after `.`"));
                    }
                    e = Expr::Property {
                        base: Box::new(e),
                        name,
                        offset,
                    };
                }
                Some(b'[') => {
                    let at = self.pos;
                    self.pos += 1;
                    self.enter(at)?;
                    let index = self.parse_or()?;
                    if !self.eat("]") {
                        return Err(self.err_here("`]`"));
                    }
                    self.leave();
                    e = Expr::Index {
                        base: Box::new(e),
                        index: Box::new(index),
                    };
                }
                _ => return Ok(e),
            }
        }
    }

    /// Property / identifier characters: GH allows `-` (e.g. step ids), and a
    /// property may start with a digit (`steps.0x.outputs`).
    fn take_name(&mut self) -> String {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            self.pos += 1;
        }
        self.src
            .get(start..self.pos)
            .unwrap_or_default()
            .to_string()
    }

    fn parse_primary(&mut self) -> Result<Expr, ExprError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            None => Err(self.err_here("a value")),
            Some(b'(') => {
                self.pos += 1;
                self.enter(start)?;
                let e = self.parse_or()?;
                if !self.eat(")") {
                    return Err(self.err_here("`)`"));
                }
                self.leave();
                Ok(e)
            }
            Some(b'[') => self.parse_list(),
            Some(q @ (b'\'' | b'"')) => self.parse_string(q),
            Some(c) if c.is_ascii_digit() || c == b'-' || c == b'.' => self.parse_number(),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => self.parse_ident(),
            Some(_) => Err(self.err_here("a value")),
        }
    }

    fn parse_list(&mut self) -> Result<Expr, ExprError> {
        let start = self.pos;
        self.pos += 1;
        self.enter(start)?;
        let mut items = Vec::new();
        if !self.eat("]") {
            loop {
                if items.len() >= MAX_LIST_LEN {
                    return Err(ExprError::new(
                        start,
                        format!("list literal has more than {MAX_LIST_LEN} items"),
                    ));
                }
                items.push(self.parse_or()?);
                if self.eat(",") {
                    continue;
                }
                if self.eat("]") {
                    break;
                }
                return Err(self.err_here("`,` or `]`"));
            }
        }
        self.leave();
        Ok(Expr::List(items))
    }

    fn parse_string(&mut self, quote: u8) -> Result<Expr, ExprError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut seg = self.pos;
        loop {
            match self.peek() {
                None => return Err(ExprError::new(start, "unterminated string literal")),
                Some(c) if c == quote => {
                    out.push_str(self.src.get(seg..self.pos).unwrap_or_default());
                    // A doubled quote is an escaped quote.
                    if self.peek_at(1) == Some(quote) {
                        out.push(char::from(quote));
                        self.pos += 2;
                        seg = self.pos;
                    } else {
                        self.pos += 1;
                        return Ok(Expr::String(out));
                    }
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    fn parse_number(&mut self) -> Result<Expr, ExprError> {
        let start = self.pos;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.pos += 1;
        }
        if self.peek() == Some(b'0') && matches!(self.peek_at(1), Some(b'x' | b'X')) {
            self.pos += 2;
            let digits = self.pos;
            while matches!(self.peek(), Some(c) if c.is_ascii_hexdigit()) {
                self.pos += 1;
            }
            let text = self.src.get(digits..self.pos).unwrap_or_default();
            let v = i64::from_str_radix(text, 16)
                .map_err(|_| ExprError::new(start, "invalid hexadecimal number"))?;
            let v = v as f64;
            return Ok(Expr::Number(if neg { -v } else { v }));
        }
        while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let save = self.pos;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
                while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
                    self.pos += 1;
                }
            } else {
                self.pos = save;
            }
        }
        // A number glued to letters (`12abc`) is a typo, not two tokens.
        if matches!(self.peek(), Some(c) if c.is_ascii_alphabetic() || c == b'_') {
            return Err(ExprError::new(start, "invalid number"));
        }
        let text = self.src.get(start..self.pos).unwrap_or_default();
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Expr::Number(v)),
            _ => Err(ExprError::new(start, format!("invalid number `{text}`"))),
        }
    }

    fn parse_ident(&mut self) -> Result<Expr, ExprError> {
        let start = self.pos;
        let name = self.take_name();
        self.skip_ws();
        if self.peek() == Some(b'(') {
            let Some(func) = Func::lookup(&name) else {
                return Err(ExprError::new(start, format!("unknown function `{name}`")));
            };
            self.pos += 1;
            self.enter(start)?;
            let mut args = Vec::new();
            if !self.eat(")") {
                loop {
                    if args.len() >= MAX_LIST_LEN {
                        return Err(ExprError::new(start, "too many function arguments"));
                    }
                    args.push(self.parse_or()?);
                    if self.eat(",") {
                        continue;
                    }
                    if self.eat(")") {
                        break;
                    }
                    return Err(self.err_here("`,` or `)`"));
                }
            }
            self.leave();
            let (min, max) = func.arity();
            if args.len() < min || args.len() > max {
                let expected = if min == max {
                    format!("{min}")
                } else if max == usize::MAX {
                    format!("at least {min}")
                } else {
                    format!("{min} to {max}")
                };
                return Err(ExprError::new(
                    start,
                    format!(
                        "function `{}` takes {expected} argument(s), got {}",
                        func.name(),
                        args.len()
                    ),
                ));
            }
            return Ok(Expr::Call {
                func,
                args,
                offset: start,
            });
        }
        match name.as_str() {
            "true" => Ok(Expr::Bool(true)),
            "false" => Ok(Expr::Bool(false)),
            "null" => Ok(Expr::Null),
            n if CONTEXT_ROOTS.contains(&n) => Ok(Expr::Context {
                name,
                offset: start,
            }),
            _ => Err(ExprError::new(
                start,
                format!(
                    "unknown context `{name}` (allowed: {})",
                    CONTEXT_ROOTS.join(", ")
                ),
            )),
        }
    }
}
