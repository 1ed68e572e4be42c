//! The built-in supervisor (being written).
