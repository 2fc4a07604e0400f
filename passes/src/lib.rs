//! Analyses and transformations over `ir`. Each pass will live in its own file with a name and
//! a one-line description, grouped into named pipelines; the IR issue fills this crate.
