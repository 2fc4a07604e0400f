//! The `nicc` command line (being assembled).
fn main() {}
