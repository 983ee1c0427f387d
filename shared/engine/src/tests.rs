//! Engine tests: the whole pipeline on fake ports.
