//! Property tests: no input makes the parser or the merge panic; JSON and
//! TOML spellings resolve identically; priority resolution does not depend
//! on the order of imports.
