//! The `n2d` command line: glue between the library crates.
fn main() {
    println!("n2d");
}
