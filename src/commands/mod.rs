//! One module per subcommand. Each takes its parsed arguments and returns the text to print
//! or an error message for the user; `main` does the printing and the exit status.

pub mod bench;
pub mod bench_opt;
pub mod build;
pub mod check;
pub mod compile;
pub mod compile_native;
pub mod compile_nfp;
pub mod compile_verilog;
pub mod conformance_plugin;
pub mod diff_kernel;
pub mod disasm;
pub mod info;
pub mod ir;
pub mod load;
pub mod opt;
pub mod run;
pub mod sim;
pub mod sim_nfp;
pub mod sim_verilog;
pub mod synth;

use frontend::object::ProgramKind;
use frontend::Object;

/// Picks the program to run: by function or section name, or the only XDP program. With
/// several candidates and no name, the error lists them so the user can choose.
pub fn select_program(obj: &Object, name: Option<&str>) -> Result<usize, String> {
    let listing = || {
        obj.programs
            .iter()
            .map(|p| format!("  {} (section {}, {:?})", p.name, p.section, p.kind))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if let Some(name) = name {
        return obj
            .programs
            .iter()
            .position(|p| p.name == name)
            .or_else(|| obj.programs.iter().position(|p| p.section == name))
            .ok_or_else(|| {
                format!(
                    "{} has no program or section named `{name}`; its programs are:\n{}",
                    obj.name,
                    listing()
                )
            });
    }
    let xdp: Vec<usize> = obj
        .programs
        .iter()
        .enumerate()
        .filter(|(_, p)| p.kind == ProgramKind::Xdp)
        .map(|(i, _)| i)
        .collect();
    match xdp.as_slice() {
        [only] => Ok(*only),
        [] if obj.programs.is_empty() => Err(format!("{} holds no programs", obj.name)),
        [] => Err(format!(
            "{} holds no XDP program, and only XDP programs can run on packets; its programs are:\n{}",
            obj.name,
            listing()
        )),
        _ => Err(format!(
            "{} holds several XDP programs; choose one with --program NAME:\n{}",
            obj.name,
            xdp.iter()
                .map(|&i| format!("  {} (section {})", obj.programs[i].name, obj.programs[i].section))
                .collect::<Vec<_>>()
                .join("\n")
        )),
    }
}

/// Reads an object file, turning the frontend's diagnostic into the message to print.
pub fn read_object(path: &std::path::Path) -> Result<Object, String> {
    frontend::elf::read_file(path).map_err(|d| d.to_string())
}

/// Reads a map-contents JSON file (the `--maps-in` format).
pub fn read_maps(path: &std::path::Path) -> Result<frontend::mapdata::MapsSnapshot, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read map contents {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{}: not valid map contents: {e}", path.display()))
}
