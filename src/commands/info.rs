//! `nicc info OBJ`: what an object holds — its programs (section, kind, size, functions) and
//! its maps (type, key and value sizes, entries, where the definition came from).

use std::fmt::Write;
use std::path::Path;

pub fn info(path: &Path) -> Result<String, String> {
    let obj = super::read_object(path)?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: license {:?}, {} programs, {} maps",
        obj.name,
        obj.license.as_deref().unwrap_or("none"),
        obj.programs.len(),
        obj.maps.len()
    );
    for p in &obj.programs {
        let _ = writeln!(
            s,
            "program {} section {} kind {:?}: {} instructions, {} functions, {} line records",
            p.name,
            p.section,
            p.kind,
            p.insns.len(),
            p.functions.len(),
            p.lines.len()
        );
    }
    for (i, m) in obj.maps.iter().enumerate() {
        let _ = writeln!(
            s,
            "map {i} {}: {:?} key {} value {} max_entries {} flags {:#x} ({:?})",
            m.name, m.map_type, m.key_size, m.value_size, m.max_entries, m.flags, m.origin
        );
    }
    Ok(s)
}
