//! Unit tests: recorded fixtures, golden events, split-anywhere properties.
