//! Glob matching for route patterns: `*` matches any run of characters, `?` exactly one.

/// Whether `text` matches `pattern` (iterative, linear backtracking on the last `*`).
pub(crate) fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches("claude-*", "claude-3-opus"));
        assert!(matches("claude-*", "claude-"));
        assert!(!matches("claude-*", "gpt-4"));
        assert!(matches("o?-mini", "o3-mini"));
        assert!(!matches("o?-mini", "o3x-mini"));
        assert!(matches("*sonnet*", "claude-3-5-sonnet-latest"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(matches("*", ""));
    }
}
