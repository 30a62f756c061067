//! Binding to XRT (placeholder).
