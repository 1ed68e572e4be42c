//! Tests of `n2d watch` (being written).
