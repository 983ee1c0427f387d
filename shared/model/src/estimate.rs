//! An honest estimate of a request's input tokens, for where no upstream figure exists yet.

use std::io;

use crate::{ChatRequest, Part, Tool};

/// Counts the bytes serde would write, without keeping them.
struct Count(usize);

impl io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn json_len(v: &serde_json::Value) -> usize {
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// Characters of text and fixed token costs (images) in one part.
fn part_cost(p: &Part) -> (usize, u64) {
    match p {
        Part::Text { text, .. } | Part::Thinking { text, .. } => (text.len(), 0),
        Part::ToolUse {
            name, arguments, ..
        } => (name.len() + arguments.len(), 0),
        Part::ToolResult { content, .. } => content
            .iter()
            .map(part_cost)
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)),
        Part::Image { .. } => (0, 1_600),
        Part::Opaque { block, .. } => (json_len(block), 0),
        Part::RedactedThinking { data } => (data.len() / 4, 0),
    }
}

impl ChatRequest {
    /// About 4 characters a token plus fixed costs per turn and image: for upstreams with no
    /// counting endpoint, and for clients that want a figure before the upstream reports one.
    /// Never a fake zero.
    pub fn estimate_input_tokens(&self) -> u64 {
        let mut chars = 0usize;
        let mut fixed = 3u64;
        for p in self
            .system
            .iter()
            .chain(self.messages.iter().flat_map(|m| m.content.iter()))
        {
            let (c, f) = part_cost(p);
            chars = chars.saturating_add(c);
            fixed = fixed.saturating_add(f);
        }
        fixed = fixed.saturating_add(4 * self.messages.len() as u64);
        for t in &self.tools {
            chars = chars.saturating_add(match t {
                Tool::Function {
                    name,
                    description,
                    parameters,
                    ..
                } => {
                    name.len() + description.as_ref().map_or(0, String::len) + json_len(parameters)
                }
                Tool::Native { def, .. } => json_len(def),
            });
        }
        (chars as u64).div_ceil(4).saturating_add(fixed)
    }
}
